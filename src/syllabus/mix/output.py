"""What a search leaves for the user: ``results.json``, ``search.md``, ``plots/`` and the rewritten plan.

Reports never crash on a missing or infinite number: it prints as ``—``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from syllabus.config.load import read_yaml  # noqa: E402
from syllabus.mix.space import REPLAY  # noqa: E402


def _num(value, digits: int = 4) -> str:
    return "—" if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) \
        else f"{value:.{digits}f}"


def write_outputs(out: Path, summary: dict, fit) -> None:
    """``results.json`` (``summary``), the two plots and ``search.md`` in ``out``."""
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    plots = _plots(out, summary, fit)
    (out / "search.md").write_text(search_markdown(summary, plots))


def search_markdown(summary: dict, plots: list[str]) -> str:
    names = summary["components"]
    domains = sorted({d for r in summary["rows"] for d in r["losses"]})
    rec = summary["recommended"]
    lines = [f"# Mixture search: plan `{summary['plan']}`, stage `{summary['stage']}`", "",
             f"- Mode: **{summary['mode']}**" + (f" (every proxy starts from the final checkpoint of the stage before, "
                                                 f"in `{summary['from_run']}`)" if summary["from_run"] else
                                                 " (every proxy trains from scratch)"),
             f"- Proxies: {len(summary['rows'])} of {summary['proxy_steps']} steps each (the stage's full budget: "
             f"{summary['full_steps']} steps); run folders under `proxies/` (`syllabus compare proxies/*`)",
             f"- Objective (lower is better): {summary['objective']}",
             "- Bounds: " + ", ".join(f"{n} in [{_num(lo, 3)}, {_num(hi, 3)}]" + (f" ({why})" if why != "none" else "")
                                      for n, (lo, hi, why) in summary["bounds"].items()), "",
             "## Recommended mixture", "",
             "| " + " | ".join(names) + " | predicted objective | ± (1 SD) |",
             "|" + "---|" * (len(names) + 2),
             "| " + " | ".join(_num(rec["weights"][n]) for n in names) + f" | {_num(rec['predicted'])} | "
             f"{_num(rec['uncertainty'])} |", "",
             "Epochs of each source the full stage reads with it: " +
             (", ".join(f"{n} {_num(e, 2)}" for n, e in rec["epochs"].items()) or "—") + ".", "",
             f"Fit: quadratic ridge (scikit-learn) on {summary['fit']['n']} proxies; leave-one-out RMSE "
             f"{_num(summary['fit']['cv_rmse'])}, Spearman's rho (leave-one-out predicted vs observed) "
             f"{_num(summary['fit']['cv_spearman'], 3)}."]
    held = summary["holdout"]
    if held["names"]:
        lines += ["", f"Held out of the fit: {len(held['names'])} proxies, Spearman's rho predicted vs observed "
                      f"{_num(held['spearman'], 3)}."]
    lines += ["", "## Every proxy", "",
              "| proxy | kind | " + " | ".join(names) + " | objective | " + " | ".join(f"loss {d}" for d in domains)
              + " | notes |", "|" + "---|" * (len(names) + len(domains) + 4)]
    for r in sorted(summary["rows"], key=lambda r: (math.isnan(r["objective"]), r["objective"])):
        notes = "; ".join(r["outside"]) or ("not finished" if math.isnan(r["objective"]) else "")
        lines.append(f"| {r['name']} | {r['kind']} | " + " | ".join(_num(r["weights"][n], 3) for n in names) +
                     f" | {_num(r['objective'])}" + (f" ± {_num(r['stderr'])}" if r["stderr"] else "") + " | " +
                     " | ".join(_num(r["losses"].get(d)) for d in domains) + f" | {notes} |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(out: Path, summary: dict, fit) -> list[str]:
    folder = out / "plots"
    folder.mkdir(exist_ok=True)
    rows = [r for r in summary["rows"] if math.isfinite(r["objective"])]
    names = summary["components"]
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(5, 5))
    fitted = [r for r in summary["rows"] if r["kind"] != "holdout"]
    pairs = [(p, r["objective"]) for p, r in zip(summary["fit"]["cv_predictions"],
                                                 [r for r in fitted if math.isfinite(r["objective"])])]
    ax.scatter([o for _, o in pairs], [p for p, _ in pairs], label="fit proxies (leave-one-out)")
    held = summary["holdout"]
    if held["names"]:
        ax.scatter(held["observed"], held["predicted"], marker="s", label="held out")
    values = [r["objective"] for r in rows] + [p for p, _ in pairs]
    low, high = min(values), max(values)
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set(xlabel="observed objective", ylabel="predicted objective", title="predicted vs observed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "predicted_vs_observed.png", dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.scatter([r["weights"][name] for r in rows], [r["objective"] for r in rows], s=14)
        ax.axvline(summary["recommended"]["weights"][name], color="tab:red", linewidth=1)
        ax.set(xlabel=f"{name} share")
    axes[0][0].set(ylabel="objective")
    fig.suptitle("each component's share vs objective (red: recommended)")
    fig.tight_layout()
    fig.savefig(folder / "weights_vs_objective.png", dpi=100)
    plt.close(fig)
    return ["plots/predicted_vs_observed.png", "plots/weights_vs_objective.png"]


def rounded_shares(weights: dict[str, float], digits: int = 4) -> dict[str, float]:
    """Shares rounded to ``digits`` decimals, the largest absorbing the rounding so they still sum to 1."""
    shares = {k: round(v, digits) for k, v in weights.items()}
    largest = max(shares, key=shares.get)
    shares[largest] = round(1 - sum(v for k, v in shares.items() if k != largest), digits + 2)
    return shares


def write_plan(plan_path: str | Path, out_path: str | Path, stage: str, weights: dict[str, float],
               source: str) -> Path:
    """A copy of the plan at ``plan_path`` with stage ``stage``'s ``data`` and ``replay.fraction`` set from
    ``weights`` (components -> shares; a replay share of 0 drops the block), ``mixture_from: source`` on the
    stage (the run's report shows it), and a comment on top saying where they came from. Written to
    ``out_path``; the original's comments are not kept (YAML loaders drop them)."""
    data = read_yaml(plan_path)
    shares = rounded_shares(weights)
    for entry in data["stages"]:
        if entry.get("name") == stage:
            entry["data"] = {k: shares[k] for k in entry["data"]}
            if entry.get("replay"):
                if shares.get(REPLAY, 0) > 0:
                    entry["replay"]["fraction"] = shares[REPLAY]
                else:
                    entry.pop("replay")
            entry["mixture_from"] = source
    out_path = Path(out_path)
    out_path.write_text(f"# Written by `syllabus mix search` from {plan_path}: stage '{stage}' has the recommended\n"
                        f"# mixture of {source} in its data and replay; everything else is as in {plan_path}.\n" +
                        yaml.safe_dump(data, sort_keys=False))
    return out_path
