"""Does a mixture search pay? One interleaved stage over the demo corpus's four domains, at a tiny scale.

1. Search: ``syllabus mix search`` with K proxies of B/8 steps (plus 6 held-out proxies kept out of the fit).
2. Full budget B: the recommended mixture, the plan's hand-set one and uniform, 3 seeds each; the 6 held-out
   mixtures once each. Every run is an ordinary plan run (the search's own scheduler launches them).
3. Report: objective (mean held-out loss over the four domains, nats/token) mean ± SE per mixture; the
   recommended-minus-hand-set difference against 2 SE of the difference; Spearman's rho between predicted and
   realized objective on the held-out mixtures at proxy and at full scale.

Usage: ``syllabus corpus demo data/demo-corpus`` once, then
``PYTHONPATH=src python bench/mix_search.py [--corpus data/demo-corpus] [--out runs/mix-bench] [--steps 400]``.
Prints a JSON summary and writes it to ``OUT/bench.json``; running again reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path


HAND_SET = {"wiki": 0.327, "reasoning": 0.230, "math": 0.235, "code": 0.208}  # plans/demo-interleaved.yaml
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 192}
SEEDS = (1337, 2024, 7)


def plan(corpus: Path, steps: int, weights: dict, seed: int, tokenizer: str | None) -> dict:
    from syllabus.data.corpus import demo_sources

    return {"name": "mix-bench", "sources": {k: str(v) if isinstance(v, (str, Path)) else v
                                              for k, v in demo_sources(corpus).items()},
            "model": {"size": "tiny", "overrides": TINY},
            "tokenizer": {"path": tokenizer} if tokenizer else {"vocab_size": 1024},
            "defaults": {"micro_batch_size": 8, "max_seq_length": 64, "mixed_precision": "fp32", "log_interval": 50,
                         "save_interval": 100, "keep_last_n_checkpoints": 1},
            "stages": [{"name": "interleaved", "data": weights, "budget": {"steps": steps},
                        "lr": {"peak": 3.0e-3, "min": 3.0e-4, "warmup": steps // 10}}],
            "evaluation": {"every": steps, "perplexity": ["wiki", "reasoning", "math", "code"], "batches": 8},
            "seed": seed}


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd / math.sqrt(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/demo-corpus")
    parser.add_argument("--out", default="runs/mix-bench")
    parser.add_argument("--steps", type=int, default=400, help="the full budget B in steps (512 tokens each)")
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    from syllabus.config.plan import PlanConfig
    from syllabus.mix.fit import spearman
    from syllabus.mix.proxies import Objective, proxy_finished, write_plan_file
    from syllabus.mix.search import SearchSettings, run_proxies, run_search

    out, corpus = Path(args.out), Path(args.corpus).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = PlanConfig.model_validate(plan(corpus, args.steps, HAND_SET, SEEDS[0], None))
    settings = SearchSettings(stage="interleaved", k=args.k, holdout=6, proxy_steps=args.steps // 8,
                              parallel=args.parallel, threads=1)
    summary = run_search(base, out / "search", settings)
    search_seconds = time.monotonic() - started
    tokenizer = str((out / "search" / "tokenizer.json").resolve())
    uniform = {k: 0.25 for k in HAND_SET}
    full = {f"{label}-s{seed}": (weights, seed) for label, weights in
            (("recommended", summary["recommended"]["weights"]), ("hand-set", HAND_SET), ("uniform", uniform))
            for seed in SEEDS}
    held = {r["name"]: r["weights"] for r in summary["rows"] if r["kind"] == "holdout"}
    full.update({f"{name}-s{SEEDS[0]}": (w, SEEDS[0]) for name, w in held.items()})
    for name, (weights, seed) in full.items():
        write_plan_file(out / "full" / "plans" / f"{name}.yaml", plan(corpus, args.steps, weights, seed, tokenizer))
    run_proxies(out / "full", list(full), "interleaved", args.parallel, 1)
    objective = Objective({d: 1.0 for d in HAND_SET})
    realized = {name: objective.score(proxy_finished(out / "full" / "proxies" / name, "interleaved"))[0]
                for name in full}
    table = {}
    for label in ("recommended", "hand-set", "uniform"):
        values = [realized[f"{label}-s{s}"] for s in SEEDS]
        table[label] = {"values": values, "mean": mean_se(values)[0], "se": mean_se(values)[1]}
    diffs = [realized[f"hand-set-s{s}"] - realized[f"recommended-s{s}"] for s in SEEDS]
    diff_se = math.hypot(table["hand-set"]["se"], table["recommended"]["se"])
    gain = table["hand-set"]["mean"] - table["recommended"]["mean"]
    predicted = dict(zip(summary["holdout"]["names"], summary["holdout"]["predicted"]))
    result = {
        "machine": f"{_cpu()}, {os.cpu_count()} cores (shared with other jobs; load average at the end "
                   f"{os.getloadavg()[0]:.1f})", "platform": platform.platform(),
        "budget_steps": args.steps, "tokens_per_step": 512, "proxy_steps": summary["proxy_steps"], "k": args.k,
        "recommended": summary["recommended"], "fit": {k: v for k, v in summary["fit"].items()
                                                       if k != "cv_predictions"},
        "full": table, "paired_differences_hand_minus_recommended": diffs,
        "gain_hand_minus_recommended": gain, "se_of_difference": diff_se, "beats_by_2se": gain > 2 * diff_se,
        # the same seed gives both mixtures the same initial weights: the paired difference's SE removes that part
        "paired_se": mean_se(diffs)[1], "beats_by_2_paired_se": gain > 2 * mean_se(diffs)[1],
        "holdout_spearman_proxy": summary["holdout"]["spearman"],
        "holdout_spearman_full": spearman([predicted[n] for n in held], [realized[f"{n}-s{SEEDS[0]}"] for n in held]),
        "holdout": {n: {"weights": held[n], "predicted": predicted[n],
                        "proxy": summary["holdout"]["observed"][summary["holdout"]["names"].index(n)],
                        "full": realized[f"{n}-s{SEEDS[0]}"]} for n in held},
        "search_seconds": round(search_seconds), "total_seconds": round(time.monotonic() - started)}
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _cpu() -> str:
    try:
        line = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(x.split(":", 1)[1].strip() for x in line.splitlines() if x.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
