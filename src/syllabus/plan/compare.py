"""``syllabus compare``: runs of one or several plans side by side, aligned by tokens seen.

Everything comes from each run folder's own records (``metrics.jsonl``, ``evals.jsonl``, ``plan.yaml``), so
the comparison's numbers are the runs' numbers. Tokens seen count across stages: a stage's evaluations are
placed after the tokens of every stage before it, so a staged run and a one-stage (interleaved) run of the
same total budget share one axis.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from syllabus.config.errors import ConfigError  # noqa: E402
from syllabus.plan.numbers import as_number  # noqa: E402


class RunRecords:
    """One run folder's records: name, per-stage token offsets, evaluations along the run, stage ends."""

    def __init__(self, folder: Path):
        if not (folder / "plan.yaml").is_file() or not (folder / "metrics.jsonl").is_file():
            raise ConfigError(f"{folder}: not a plan run folder (needs plan.yaml and metrics.jsonl from `syllabus run`)")
        self.folder = folder
        self.plan = yaml.safe_load((folder / "plan.yaml").read_text())
        self.name = f"{folder.name} ({self.plan['name']})"
        self.records = [json.loads(line) for line in open(folder / "metrics.jsonl")]
        evals = folder / "evals.jsonl"
        rows = [json.loads(line) for line in open(evals)] if evals.exists() else []
        # a stage's closing evaluation; not in-stage task rows (kind) nor merge candidates (event)
        self.stage_ends = [r for r in rows if "kind" not in r and "event" not in r]
        self.offsets = self._offsets()

    def _offsets(self) -> dict[str, int]:
        """stage -> tokens seen by the run before that stage started (from each stage's last record)."""
        last: dict[str, int] = {}
        for r in self.records:
            if "stage" in r and "tokens_seen" in r:
                last[r["stage"]] = max(last.get(r["stage"], 0), r["tokens_seen"])
        offsets, total = {}, 0
        for stage in [s["name"] for s in self.plan["stages"]]:
            offsets[stage] = total
            total += last.get(stage, 0)
        return offsets

    def perplexity_curve(self, domain: str) -> list[tuple[int, float]]:
        """(tokens seen over the whole run, held-out perplexity of ``domain``), in order."""
        return sorted((self.offsets.get(r["stage"], 0) + r["tokens_seen"], math.exp(min(r[f"val_loss/{domain}"], 50.0)))
                      for r in self.records if as_number(r.get(f"val_loss/{domain}")) is not None
                      and "tokens_seen" in r and "stage" in r)

    def final_perplexity(self, domain: str) -> float | None:
        curve = self.perplexity_curve(domain)
        return curve[-1][1] if curve else None

    def stage_rows(self) -> list[dict]:
        """Per stage: tokens, wall seconds between its first and last logged step, forgetting events."""
        rows = []
        for stage in [s["name"] for s in self.plan["stages"]]:
            steps = [r for r in self.records if r.get("stage") == stage and "loss" in r]
            if not steps:
                continue
            rows.append({"stage": stage, "tokens": max(r["tokens_seen"] for r in steps),
                         "seconds": steps[-1]["time"] - steps[0]["time"] if "time" in steps[0] else None,
                         "forgetting": sum(1 for r in self.records
                                           if r.get("event") == "forgetting" and r.get("stage") == stage)})
        return rows


def compare_runs(folders: list[str | Path], out: str | Path) -> Path:
    """Write ``out/compare.md`` with plots comparing the plan runs in ``folders``; returns its path.

    Raises ``ConfigError`` (one line) when a folder is not a plan run folder or fewer than two are given."""
    if len(folders) < 2:
        raise ConfigError("compare: give at least two run folders")
    runs = [RunRecords(Path(f)) for f in folders]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    domains = sorted({k.split("/", 1)[1] for run in runs for r in run.records for k in r if k.startswith("val_loss/")})
    lines = ["# Comparison", "", "Runs: " + ", ".join(f"`{run.name}`" for run in runs), ""]
    lines += _final_table(runs, domains)
    if domains:
        plot = _plot_perplexity(runs, domains, out / "perplexity_by_tokens.png")
        lines += ["## Held-out perplexity against tokens seen", "", f"![perplexity]({plot.name})", ""]
    lines += _benchmark_table(runs)
    lines += ["## Tokens, wall time and forgetting events per stage", "",
              "| run | stage | tokens | wall time (s) | forgetting events |", "|---|---|---|---|---|"]
    for run in runs:
        for row in run.stage_rows():
            seconds = "–" if row["seconds"] is None else f"{row['seconds']:.0f}"
            lines.append(f"| {run.name} | {row['stage']} | {row['tokens']:,} | {seconds} | {row['forgetting']} |")
    path = out / "compare.md"
    path.write_text("\n".join(lines + [""]))
    return path


def _final_table(runs: list[RunRecords], domains: list[str]) -> list[str]:
    """Final held-out perplexity per domain; the lowest in each column in bold."""
    finals = {run.name: {d: run.final_perplexity(d) for d in domains} for run in runs}
    best = {d: min((v[d] for v in finals.values() if v[d] is not None), default=None) for d in domains}
    lines = ["## Final held-out perplexity per domain (lowest in bold)", "",
             "| run | tokens | " + " | ".join(domains) + " |", "|---" * (len(domains) + 2) + "|"]
    for run in runs:
        total = sum(row["tokens"] for row in run.stage_rows())
        cells = []
        for d in domains:
            value = finals[run.name][d]
            cells.append("–" if value is None else f"**{value:.2f}**" if value == best[d] else f"{value:.2f}")
        lines.append(f"| {run.name} | {total:,} | " + " | ".join(cells) + " |")
    return lines + [""]


def _benchmark_table(runs: list[RunRecords]) -> list[str]:
    """Benchmark scores at each stage's end, with their standard errors where the run recorded them."""
    rows = []
    for run in runs:
        for end in run.stage_ends:
            for key, value in end.items():
                if "/" in key and not key.startswith("ppl/") and not key.endswith(("_stderr", "/n", "_n")) \
                        and as_number(value) is not None:
                    se = as_number(end.get(f"{key}_stderr"))
                    shown = f"{value:.3f}" + (f" ± {se:.3f}" if se is not None else "")
                    rows.append(f"| {run.name} | {end['stage']} | {key} | {shown} |")
    if not rows:
        return []
    return ["## Benchmarks at stage ends", "", "| run | stage | task | score |", "|---|---|---|---|", *rows, ""]


def _plot_perplexity(runs: list[RunRecords], domains: list[str], path: Path) -> Path:
    fig, axes = plt.subplots(1, len(domains), figsize=(4 * len(domains), 3.5), squeeze=False)
    for ax, domain in zip(axes[0], domains):
        for run in runs:
            curve = run.perplexity_curve(domain)
            if curve:
                ax.plot(*zip(*curve), marker="o", markersize=2, label=run.name)
        ax.set(title=domain, xlabel="tokens seen", ylabel="perplexity", yscale="log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
