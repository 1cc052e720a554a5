"""``report.md`` and its plots, made from the run folder's own records (metrics.jsonl, run_state.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from syllabus.config.plan import PlanConfig  # noqa: E402
from syllabus.config.expect import holds, parse_expect  # noqa: E402
from syllabus.evaluate.error_bars import significant_change  # noqa: E402
from syllabus.plan.decisions import lookup  # noqa: E402
from syllabus.plan.numbers import as_number, number_text  # noqa: E402
from syllabus.plan.stages import stage_weights  # noqa: E402


def write_report(plan: PlanConfig, run_dir: Path, state: dict) -> Path:
    records = _read_jsonl(run_dir / "metrics.jsonl")
    order = [s.name for s in plan.stages]
    offsets = _stage_offsets(records, order)
    plots = {
        "loss": _plot_loss(records, offsets, run_dir / "loss_by_stage.png"),
        "ppl": _plot_val_ppl(records, offsets, run_dir / "val_perplexity.png"),
        "mix": _plot_mix(records, order, run_dir / "data_mix.png"),
        "speed": _plot_throughput(records, offsets, run_dir / "throughput.png"),
        "tasks": _plot_tasks(_read_jsonl(run_dir / "evals.jsonl"), offsets, run_dir / "task_scores.png"),
    }
    results = state.get("results", {})
    lines = [f"# {plan.name}", "", f"Stages finished: {len(state.get('completed', []))} of {len(order)}.", ""]
    lines += _forgetting_table(order, results, plan)
    lines += _task_table(order, results)
    lines += _expectations(plan, results)
    lines += _decisions(state.get("decisions", []))
    lines += _mix_table(plan, records)
    lines += _reweights(state.get("reweights", []), records)
    lines += _merges(records)
    lines += _compiles(records)
    lines += _tokenizers(plan, run_dir, state)
    events = [r for r in records if r.get("event") == "forgetting"]
    lines += ["## Forgetting gate", ""]
    lines += [f"- stage {e['stage']}, step {e['step']}: {e['domain']} perplexity {number_text(e.get('ppl'), '.2f')} = "
              f"{number_text(e.get('ratio'), '.2f')}× its stage-end value; action {e['action']}" for e in events] \
        or ["- never fired"]
    lines.append("")
    for title, name in (("Training loss by stage", "loss"), ("Validation perplexity per domain", "ppl"),
                        ("Task scores over the run", "tasks"),
                        ("Realized data mix per stage", "mix"), ("Throughput", "speed")):
        if plots[name]:
            lines += [f"## {title}", "", f"![{title}]({plots[name].name})", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()] if path.exists() else []


def _stage_offsets(records: list[dict], order: list[str]) -> dict[str, int]:
    last = {}
    for r in records:
        if "loss" in r and "stage" in r:
            last[r["stage"]] = max(last.get(r["stage"], 0), r["step"])
    offsets, total = {}, 0
    for name in order:
        offsets[name] = total
        total += last.get(name, 0)
    return offsets


def _forgetting_table(order: list[str], results: dict, plan: PlanConfig) -> list[str]:
    domains = plan.evaluation.perplexity
    if not domains or not results:
        return []
    lines = ["## Perplexity at the end of each stage", "",
             "Each cell: held-out perplexity after the stage (row) on the domain (column); in brackets the ratio to "
             "the value at the end of that domain's own stage (above 1 = forgotten).", "",
             "| stage | " + " | ".join(domains) + " |", "|---" * (len(domains) + 1) + "|"]
    own_end: dict[str, float] = {}
    for name in order:
        if name not in results:
            continue
        stage = next(s for s in plan.stages if s.name == name)
        cells = []
        for d in domains:
            if f"ppl/{d}" not in results[name]:
                cells.append("–")
                continue
            value = as_number(results[name][f"ppl/{d}"])
            if value is None:
                cells.append("not measured")
                continue
            ratio = f" ({value / own_end[d]:.2f}×)" if d in own_end else ""
            cells.append(f"{value:.2f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for d in stage.data:
            if as_number(results[name].get(f"ppl/{d}")):
                own_end[d] = as_number(results[name][f"ppl/{d}"])
    return lines + [""]


def _task_table(order: list[str], results: dict) -> list[str]:
    """Task scores per stage as ``value ± SE (n=N)``; a change from the previous stage's row is marked ▲/▼ only
    when it exceeds two standard errors of the difference (``error_bars.significant_change``)."""
    scores = sorted({k for r in results.values() for k in r
                     if not k.startswith("ppl/") and not k.endswith(("/n", "_stderr", "_n", "/seconds"))})
    if not scores:
        return []
    lines = ["## Task scores at the end of each stage", "",
             "Each cell: value ± standard error (n = items). ▲/▼ marks a change from the stage above larger than "
             "two standard errors of the difference; unmarked changes are within noise.", "",
             "| stage | " + " | ".join(scores) + " |", "|---" * (len(scores) + 1) + "|"]
    previous: dict | None = None
    for name in order:
        if name not in results:
            continue
        row = results[name]
        lines.append(f"| {name} | " + " | ".join(_score_cell(row, previous, k) for k in scores) + " |")
        previous = row
    return lines + [""]


def _score_cell(row: dict, previous: dict | None, key: str) -> str:
    if key not in row:
        return "–"
    value = as_number(row[key])
    if value is None:
        return "not measured"
    se = as_number(row.get(f"{key}_stderr"))
    task = key.split("/", 1)[0]
    n = row.get(f"{key}_n", row.get(f"{task}/n"))
    cell = f"{value:.3f}"
    if se is not None:
        cell += f" ± {se:.3f}"
    if as_number(n) is not None:
        cell += f" (n={int(n)})"
    before, before_se = as_number((previous or {}).get(key)), as_number((previous or {}).get(f"{key}_stderr"))
    if before is not None and se is not None and before_se is not None:
        if significant_change(before, before_se, value, se):
            cell += " ▲" if value > before else " ▼"
    return cell


def _mix_table(plan: PlanConfig, records: list[dict]) -> list[str]:
    """Planned vs realized token shares per stage, from each stage's closing ``event: data`` record: realized
    over the whole stage, and since the last change of weights (the forgetting gate's, when it acted)."""
    mixes = {r["stage"]: r["mix"] for r in records if r.get("event") == "data" and "stage" in r}
    if not mixes:
        return []
    lines = ["## Data mix per stage", "",
             "Share of tokens per source: planned by the plan, the target at the stage's end (after any change by "
             "the forgetting gate), realized over the whole stage and since the last change.", "",
             "| stage | source | planned | final target | realized | realized since change | tokens |",
             "|---|---|---|---|---|---|---|"]
    for index, stage in enumerate(plan.stages):
        if stage.name not in mixes:
            continue
        planned = stage_weights(plan, index)
        for source, row in mixes[stage.name].items():
            since = row.get("realized_share_since_change", row["realized_share"])
            lines.append(f"| {stage.name} | {source} | {planned.get(source, 0.0):.3f} | {row['target_share']:.3f} | "
                         f"{row['realized_share']:.3f} | {since:.3f} | {row['tokens']:,} |")
    chosen = [f"- Stage '{s.name}': its planned mixture is the one recommended by {s.mixture_from}."
              for s in plan.stages if s.mixture_from and s.name in mixes]
    return lines + ([""] + chosen if chosen else []) + [""]


def _reweights(events: list[dict], records: list[dict]) -> list[str]:
    """One row per source of each mixture edit of a running stage: planned and realized shares before the
    edit and after it (realized after = the stage's tokens since the edit, from its closing data record)."""
    if not events:
        return []
    closing = {r["stage"]: r["mix"] for r in records if r.get("event") == "data" and "stage" in r}
    lines = ["## Mixture edited while running", "",
             "| stage | from step | source | planned before | planned after | realized before | realized after |",
             "|---|---|---|---|---|---|---|"]
    for e in events:
        end = closing.get(e["stage"], {})
        after = {s: end[s]["tokens"] - e["tokens_before"].get(s, 0) for s in end}
        total = sum(after.values())
        for source in sorted(set(e["planned_before"]) | set(e["planned_after"])):
            realized_after = f"{after[source] / total:.3f}" if total and source in after else "–"
            lines.append(f"| {e['stage']} | {e['step']} | {source} | {e['planned_before'].get(source, 0):.3f} | "
                         f"{e['planned_after'].get(source, 0):.3f} | {e['realized_before'].get(source, 0):.3f} | "
                         f"{realized_after} |")
    return lines + [""]


def _merges(records: list[dict]) -> list[str]:
    """Checkpoint merging at stage ends: both candidates' mean held-out loss and which became ``final``."""
    rows = [r for r in records if r.get("event") == "merge"]
    if not rows:
        return []
    lines = ["## Checkpoint merging at stage ends", "", "| stage | candidate | checkpoints averaged | rule | "
             "mean held-out loss | became final |", "|---|---|---|---|---|---|"]
    for r in rows:
        averaged = ", ".join(r.get("averaged", [])) if r.get("candidate") == "merged" else "–"
        lines.append(f"| {r.get('stage')} | {r.get('candidate')} | {averaged} | {r.get('rule', '?')} | "
                     f"{number_text(r.get('mean_loss'), '.4f')} | {'yes' if r.get('chosen') else 'no'} |")
    lines += [f"- {r['stage']}: {r['note']}" for r in rows if r.get("note") and r.get("chosen")]
    return lines + [""]


def _compiles(records: list[dict]) -> list[str]:
    """Whether each stage's blocks were compiled (``event: compile``, ``train/compile_choice.py``): at which step,
    on what figures, and what the compile then measured; the throughput plot's dip at that step is its warm-up."""
    rows = [r for r in records if r.get("event") == "compile"]
    if not rows:
        return []
    lines = ["## Compilation", ""]
    for r in rows:
        where = f"stage {r.get('stage', '?')}, step {r.get('step', '?')}"
        if r.get("setting") == "true":
            lines.append(f"- {where}: compiled the blocks (compile: true)")
        elif "measured_speedup" in r:
            lines.append(f"- {where}: measured warm-up {_seconds(r.get('measured_warmup_seconds'), '.1f')}, "
                         f"speed-up ×{number_text(r.get('measured_speedup'), '.2f')} (cached for later runs)")
        else:
            lines.append(f"- {where}: {'compiled the blocks' if r.get('compiled') else 'stayed eager'} (compile: "
                         f"auto; {r.get('steps_left', '?')} steps left, expected saving "
                         f"{_seconds(r.get('expected_saving_seconds'), '.0f')} against a warm-up of "
                         f"{_seconds(r.get('expected_warmup_seconds'), '.0f')}, {r.get('figures', '?')} figures)")
    return lines + [""]


def _seconds(value, spec: str) -> str:
    text = number_text(value, spec)
    return text if as_number(value) is None else f"{text} s"


def _tokenizers(plan: PlanConfig, run_dir: Path, state: dict) -> list[str]:
    """Which tokenizer the run folder's ``tokenizer.json`` is, and each finished stage's (with its special tokens)."""
    done = [(i, s) for i, s in enumerate(plan.stages) if s.name in state.get("completed", [])]
    if not done:
        return []
    lines = ["## Tokenizers", "", f"`tokenizer.json` is the tokenizer of stage '{done[-1][1].name}', the last "
             f"finished; `tokenizer-base.json` is the one before any stage added special tokens. Each stage's:", ""]
    for i, stage in done:
        path = f"stages/{i + 1}-{stage.name}/checkpoints/final/tokenizer.json"
        added = f" (adds {' '.join(stage.special_tokens)})" if stage.special_tokens else ""
        lines.append(f"- {stage.name}: [`{path}`]({path}){added}")
    return lines + [""]


def _expectations(plan: PlanConfig, results: dict) -> list[str]:
    lines = []
    for stage in plan.stages:
        if not stage.expect or stage.name not in results:
            continue
        expectation, _ = parse_expect(stage.expect)
        for key, target in (expectation.targets if expectation else {}).items():
            value = as_number(lookup(results[stage.name], key))
            verdict = "?" if value is None else "met" if holds(value, target) else "missed"
            shown = number_text(value)
            lines.append(f"- {stage.name}: {key} {target} → {shown}: **{verdict}**")
    return ["## Expectations", "", *lines, ""] if lines else []


def _decisions(decisions: list[dict]) -> list[str]:
    if not decisions:
        return []
    lines = ["## Decisions", "", "At each stage end with an `expect`: the targets missed and what was done.", ""]
    for d in decisions:
        missed = ", ".join(f"{k} = {number_text(v)}" for k, v in d.get("missed", {}).items())
        what = {"met": "all targets met", "continue": "missed; continued as asked",
                "pause": "missed; paused the run", "stop": "missed; stopped the run",
                "extend": f"missed; extended by {d.get('added_steps')} steps to {d.get('max_steps')} "
                          f"(extension {d.get('extension')} of {d.get('times')})",
                "continue_after_extensions": f"still missed after {d.get('times')} extensions; continued"}
        lines.append(f"- {d['stage']}, step {d['step']}: {what.get(d['decision'], d['decision'])}"
                     + (f" ({missed})" if missed else ""))
    return lines + [""]


def _boundaries(ax, offsets: dict[str, int]) -> None:
    for name, x in offsets.items():
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (x, 1), xycoords=("data", "axes fraction"), fontsize=8, rotation=90, va="top")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_loss(records, offsets, path) -> Path | None:
    rows = [r for r in records if "loss" in r and "stage" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in offsets:
        pts = [(offsets[name] + r["step"], r["loss"]) for r in rows if r["stage"] == name
               and as_number(r["loss"]) is not None]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set(xlabel="step (whole run)", ylabel="training loss", title="Training loss by stage")
    ax.legend()
    return _save(fig, path)


def _plot_val_ppl(records, offsets, path) -> Path | None:
    rows = [r for r in records if any(k.startswith("val_loss/") and as_number(v) is not None for k, v in r.items())
            and "stage" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    domains = sorted({k.split("/", 1)[1] for r in rows for k in r if k.startswith("val_loss/")})
    for d in domains:
        pts = sorted((offsets.get(r["stage"], 0) + r["step"], math.exp(min(r[f"val_loss/{d}"], 50.0)))
                     for r in rows if as_number(r.get(f"val_loss/{d}")) is not None)
        if not pts:
            continue
        ax.plot(*zip(*pts), marker="o", markersize=3, label=d)
    _boundaries(ax, offsets)
    ax.set(xlabel="step (whole run)", ylabel="validation perplexity", yscale="log", title="Perplexity per domain")
    ax.legend()
    return _save(fig, path)


def _plot_mix(records, order, path) -> Path | None:
    mixes = {r["stage"]: r["mix"] for r in records if r.get("event") == "data" and "stage" in r}
    if not mixes:
        return None
    stages = [s for s in order if s in mixes]
    sources = sorted({src for m in mixes.values() for src in m})
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(stages)
    for src in sources:
        shares = [mixes[s].get(src, {}).get("realized_share", 0.0) for s in stages]
        ax.bar(stages, shares, bottom=bottom, label=src)
        bottom = [b + v for b, v in zip(bottom, shares)]
    ax.set(ylabel="share of tokens", title="Realized data mix per stage")
    ax.legend()
    return _save(fig, path)


def _plot_throughput(records, offsets, path) -> Path | None:
    rows = [r for r in records if as_number(r.get("tokens_per_sec")) is not None and "stage" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot([offsets.get(r["stage"], 0) + r["step"] for r in rows], [r["tokens_per_sec"] for r in rows])
    _boundaries(ax, offsets)
    ax.set(xlabel="step (whole run)", ylabel="tokens / s", title="Throughput")
    return _save(fig, path)


def _plot_tasks(evals: list[dict], offsets: dict[str, int], path: Path) -> Path | None:
    """One line per task score (``<task>/<first metric>``) over the whole run, error bars, stage boundaries."""
    scores: dict[str, list[tuple[int, float, float]]] = {}
    for row in evals:
        if row.get("stage") not in offsets:
            continue
        tasks = {k.split("/", 1)[0] for k in row if "/" in k and not k.startswith(("ppl/", "val_"))}
        for task in sorted(tasks):
            metrics = sorted(k for k in row if k.startswith(task + "/")
                             and not k.endswith(("/n", "_stderr", "_n", "/seconds")))
            if metrics and as_number(row[metrics[0]]) is not None:
                key = metrics[0]
                scores.setdefault(key, []).append((offsets[row["stage"]] + row["step"], row[key],
                                                   as_number(row.get(f"{key}_stderr")) or 0.0))
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, points in sorted(scores.items()):
        points.sort()
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", markersize=3, capsize=2, label=key)
    _boundaries(ax, offsets)
    ax.set(xlabel="step (whole run)", ylabel="score (± 1 SE)", title="Task scores over the run")
    ax.legend(fontsize=8)
    return _save(fig, path)
