"""Two identical short runs, one after the other: do they report the same MFU? Not a test.

    .venv/bin/python bench/mfu_stability.py [--steps 60] [--runs 2] [--threads N] [--cache /tmp/syllabus-bench]

Each run is ``PreTrainer`` at the cpu-v8k shape (6 layers, d 384, 6 heads, FFN 1024, seq 256, micro batch 8)
on the throughput benchmark's prepared shards (``bench/train_throughput.py`` builds them), ``mixed_precision:
auto``, in its own process so nothing but the machine's peak cache is shared. Per run: the precision chosen,
the peak the MFU was divided by, the median tokens/s and MFU over the logged windows after the first. Before
the peaks cache, each run took its own calibration and two runs at the same speed reported MFU 0.75 and 0.46.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(shards: Path, tokenizer: Path, steps: int, out: Path, threads: int | None) -> dict:
    shape = ["--set", "model.hidden_size=384", "--set", "model.num_hidden_layers=6", "--set",
             "model.num_attention_heads=6", "--set", "model.intermediate_size=1024", "--set", "model.vocab_size=8192",
             "--set", "model.tie_word_embeddings=true"]
    argv = [sys.executable, "-m", "syllabus", "pretrain", "--data-dir", str(shards), "--tokenizer", str(tokenizer),
            "--out", str(out), "--max-steps", str(steps), "--max-seq-length", "256", "--batch-size", "8",
            "--log-interval", "10", "--eval-interval", str(10 * steps), "--save-interval", str(10 * steps),
            "--warmup-steps", "10", *shape]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    event = next(r for r in records if r.get("event") == "precision")
    windows = [r for r in records if "mfu" in r][1:]  # the first window holds the warm-up
    return {"precision": event["chosen"], "peak_gflops": round(windows[-1]["peak_flops"] / 1e9, 1),
            "tokens_per_sec": round(statistics.median(r["tokens_per_sec"] for r in windows), 1),
            "mfu": round(statistics.median(r["mfu"] for r in windows), 4),
            "precision_mfu": round(statistics.median(r["precision_mfu"] for r in windows), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "syllabus-bench"))
    args = parser.parse_args()
    shards, tokenizer = Path(args.cache) / "shards", Path(args.cache) / "tokenizer.json"
    if not (shards / "val").exists():
        sys.exit(f"--cache: no prepared shards in {shards}; run bench/train_throughput.py --quick once first")
    results = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            results.append(one_run(shards, tokenizer, args.steps, Path(out), args.threads))
        print(f"run {i + 1}: {results[-1]}", flush=True)
    mfus = [r["mfu"] for r in results]
    print(json.dumps({"runs": results, "mfu_spread": round(max(mfus) / min(mfus) - 1, 4)}))


if __name__ == "__main__":
    main()
