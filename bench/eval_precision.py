"""``syllabus eval`` in fp32 and in bf16 on the same checkpoint: task scores (with their standard errors) and time.

    .venv/bin/python bench/eval_precision.py                   # train ~150 steps, then eval A B A B
    .venv/bin/python bench/eval_precision.py --limit 400 --rounds 3

A model of the CPU benchmark's shape (width 384, 6 layers, 6 heads, SwiGLU 1024, vocabulary 4096, seq 256) is
trained briefly with ``syllabus pretrain`` on Python standard-library source, so its scores are a little above
chance rather than exactly at it; then ``syllabus eval CKPT --tasks hellaswag,arc,arithmetic --limit N`` (and ``--tasks ppl`` over
``--ppl-batches`` held-out batches) runs
in separate processes with ``--precision fp32`` and ``--precision bf16``, alternating for ``--rounds`` rounds.
Reported per task: each precision's score and standard error, the difference in standard errors, and the median
seconds per precision (``<task>/seconds`` of the results). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
SHAPE = ["--set", "model.hidden_size=384", "--set", "model.num_hidden_layers=6", "--set",
         "model.num_attention_heads=6", "--set", "model.intermediate_size=1024"]
TASKS = "hellaswag,arc,arithmetic,ppl"


def corpus(folder: Path, limit_bytes: int = 3_000_000) -> Path:
    stdlib, used = Path(sysconfig.get_paths()["stdlib"]), 0
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py"))
    with open(folder / "train.jsonl", "w") as train, open(folder / "val.jsonl", "w") as val:
        for i, path in enumerate(files):
            text = path.read_text(encoding="utf-8", errors="replace")
            (val if i % 20 == 0 else train).write(json.dumps({"text": text}) + "\n")
            used += len(text)
            if used > limit_bytes:
                break
    return folder


def syllabus(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "syllabus", *args], env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--limit", type=int, default=200, help="items per task")
    parser.add_argument("--ppl-batches", type=int, default=10, help="held-out batches of 8 rows for ppl")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", default=None, help="keep the run here (and reuse it when it exists)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="syllabus-eval-precision-"))
    run = work / "run"
    if not (run / "checkpoints" / "final").exists():
        data = corpus(work / "data")
        syllabus("pretrain", "--data-dir", str(data), "--out", str(run), "--vocab-size", "4096", "--device", "cpu",
                 "--max-steps", str(args.steps), "--max-seq-length", "256", "--batch-size", "8",
                 "--warmup-steps", "10", "--learning-rate", "2e-3", "--eval-interval", "100000",
                 "--log-interval", "50", "--mixed-precision", "auto", *SHAPE)
    results: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            out = work / f"eval-{precision}-{r}.json"
            syllabus("eval", str(run), "--tasks", TASKS.removesuffix(",ppl"), "--limit", str(args.limit),
                     "--device", "cpu", "--precision", precision, "--out", str(out))
            scores = json.loads(out.read_text())["results"]
            syllabus("eval", str(run), "--tasks", "ppl", "--limit", str(args.ppl_batches), "--device", "cpu",
                     "--precision", precision, "--out", str(out))
            results[precision].append({**scores, **json.loads(out.read_text())["results"]})
    first = {p: rows[0] for p, rows in results.items()}
    summary = {}
    print(f"syllabus eval, limit {args.limit}, {args.rounds} rounds, {os.cpu_count()} CPUs; checkpoint {run}")
    for key in sorted(first["fp32"]):
        if key.endswith("_stderr") or key.endswith("/seconds") or key.endswith("/n") or key.endswith("_n"):
            continue
        a, b = first["fp32"][key], first["bf16"][key]
        se = first["fp32"].get(f"{key}_stderr")
        diff = f"{abs(a - b) / se:.2f} SE" if se else ""
        print(f"  {key:28s} fp32 {a:9.4f}  bf16 {b:9.4f}  {diff}")
        summary[key] = {"fp32": a, "bf16": b, "stderr": se}
    for task in TASKS.split(","):
        times = {p: statistics.median(row[f"{task}/seconds"] for row in rows) for p, rows in results.items()}
        print(f"  {task + ' seconds':28s} fp32 {times['fp32']:9.2f}  bf16 {times['bf16']:9.2f}  "
              f"x{times['fp32'] / times['bf16']:.2f}")
        summary[f"{task}/seconds"] = times
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
