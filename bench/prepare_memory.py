"""Peak resident memory of ``prepare`` workers at two (or more) corpus sizes: it must not grow with the corpus.

    .venv/bin/python bench/prepare_memory.py [--sizes-mb 100,400] [--workers 2] [--part-mb 64]

For each size, a JSONL of unique documents (sentences of the demo corpus's words, 200-4000 characters each) is
generated, then ``prepare_shards`` runs in a fresh subprocess with ``--workers`` worker processes; the subprocess
reports its own peak RSS (``ru_maxrss`` of ``RUSAGE_SELF``: the parent) and the largest worker's
(``RUSAGE_CHILDREN``: the peak of the largest child). Prints ``uptime`` first and last. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from syllabus.data.corpus import build_demo_corpus  # noqa: E402
from syllabus.data.sources import read_documents  # noqa: E402
from syllabus.data.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from syllabus.data.prepare import prepare_shards
t = time.perf_counter()
report = prepare_shards([sys.argv[2]], sys.argv[3], sys.argv[4], workers=int(sys.argv[5]),
                        part_bytes=int(float(sys.argv[6]) * 1e6), echo=lambda s: None)
print(json.dumps({"seconds": time.perf_counter() - t, "parts": report["parts"]["total"],
                  "tokens": report["splits"]["train"]["tokens"],
                  "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def generate(path: Path, mb: float, words: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    size, i = 0, 0
    with open(path, "w") as f:
        while size < mb * 1e6:
            n = rng.randint(40, 700)
            line = json.dumps({"text": f"{i} " + " ".join(rng.choices(words, k=n))}) + "\n"
            f.write(line)
            size += len(line)
            i += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", default="100,400")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-mb", type=float, default=64)
    args = parser.parse_args()
    print("start:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp())
    build_demo_corpus(tmp / "demo", echo=lambda s: None)
    texts = list(read_documents(tmp / "demo" / "wiki" / "train.jsonl"))
    words = sorted({w for t in texts for w in t.split()})
    tok_path = save_tokenizer(train_tokenizer(texts, 8192), tmp / "tok")
    for mb in (float(s) for s in args.sizes_mb.split(",")):
        raw = tmp / f"gen-{mb:g}.jsonl"
        generate(raw, mb, words)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, str(HERE.parent / "src"), str(raw), str(tok_path),
                               str(tmp / f"out-{mb:g}"), str(args.workers), str(args.part_mb)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if done.returncode:
            print(done.stderr[-3000:])
            continue
        got = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{raw.stat().st_size / 1e6:8.1f} MB input, {got['parts']} parts, {got['tokens']:,} tokens, "
              f"{got['seconds']:.0f} s ({time.perf_counter() - t:.0f} s with start-up): peak RSS parent "
              f"{got['parent_mb']:.0f} MB, largest worker {got['worker_mb']:.0f} MB")
        raw.unlink()
    print("end:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
