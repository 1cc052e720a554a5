"""Prepare throughput by record shape: the tokenizer's ceiling, ``prepare`` with 1 and 2 workers, and the parent
process's own CPU per MB, for this code and (optionally) another checkout's (the design before parts).

    .venv/bin/python bench/prepare_throughput.py [--mb 10] [--repeats 2] [--part-mb 1] [--baseline-src BASE/src]

For each shape of the demo corpus (text: wiki + code, chat: reasoning, template: math with ``steps: tags``) the
records are repeated (each copy unique, so dedup keeps all) into one JSONL file of about ``--mb`` MB
(``record_throughput.replicated``), then:

- ceiling: HF ``tokenizers`` ``encode_batch_fast`` (what ``prepare`` calls; batches of 256) on the same rendered
  text already in memory, one core (``TOKENIZERS_PARALLELISM=false``, as each prepare worker);
- ``prepare_shards`` with 1 and 2 workers, ``--part-mb`` MB parts, each run in a fresh process: MB/s of raw
  JSONL, and the CPU seconds per MB of that (parent) process itself (``getrusage(RUSAGE_SELF)``; with 1 worker
  the parent is the worker);
- with ``--baseline-src``: the same two runs of ``prepare_shards`` imported from that source tree (e.g. main
  before parts), in a subprocess that reports its own (parent) CPU seconds;
- the 2-worker runs again on a quarter of the input: ``marginal`` is the parent's CPU seconds per additional MB
  (the difference of the two sizes), which leaves out its fixed start-up (tokenizer fingerprint, fork, headers).

The methods run interleaved ``--repeats`` times and the best of each is shown (the machine may be shared).

Prints ``uptime`` first and last: the machine may be shared. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from record_throughput import SHAPES, replicated  # noqa: E402
from syllabus.config.source import SourceSpec, as_source_spec  # noqa: E402
from syllabus.data.corpus import build_demo_corpus, demo_sources  # noqa: E402
from syllabus.data.records import RecordRenderer  # noqa: E402
from syllabus.data.sources import read_documents  # noqa: E402
from syllabus.data.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402

RUN = """
import inspect, json, os, resource, sys, time
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, sys.argv[1])
from syllabus.data.prepare import prepare_shards
from syllabus.data.tokenizer import load_tokenizer
raw, tok, out, workers, options = sys.argv[2], load_tokenizer(sys.argv[3]), sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6])
extra = {"part_bytes": int(sys.argv[7])} if "part_bytes" in inspect.signature(prepare_shards).parameters else {}
cpu = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
prepare_shards([raw], tok, out, workers=workers, records=options, echo=lambda s: None, **extra)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "parent_cpu": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime}))
"""


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=10)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--part-mb", type=float, default=1)
    parser.add_argument("--baseline-src", help="a src/ folder whose prepare_shards to measure the same way")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best of them is shown")
    args = parser.parse_args()
    print(f"start: {uptime()}")
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "demo"
    build_demo_corpus(corpus, echo=lambda s: None)
    texts = [t for d, src in demo_sources(corpus).items()
             for t in read_documents(corpus / d / "train.jsonl", renderer=RecordRenderer(as_source_spec(src)))]
    tok = train_tokenizer(texts[:3000], args.vocab)
    tok_path = save_tokenizer(tok, tmp / "tok")
    rows = []
    for shape, domains in SHAPES.items():
        raw, options = replicated(corpus, domains, tmp / f"{shape}.jsonl", args.mb)
        small, _ = replicated(corpus, domains, tmp / f"{shape}-small.jsonl", args.mb / 4)
        mb, small_mb = raw.stat().st_size / 1e6, small.stat().st_size / 1e6
        renderer = RecordRenderer(SourceSpec.model_validate({"path": "-", **options}))
        rendered = [str(t) for t in read_documents(raw, renderer=renderer)]

        def ceiling():  # the call prepare makes (encode_batch_fast: no offsets), on text already rendered
            encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
            t = time.perf_counter()
            for i in range(0, len(rendered), 256):
                encode(rendered[i: i + 256], add_special_tokens=False)
            return time.perf_counter() - t, None

        def run(src, workers, path=raw):  # a fresh process for every run, this tree's code or the baseline's
            done = subprocess.run([sys.executable, "-c", RUN, src, str(path), str(tok_path), tempfile.mkdtemp(dir=tmp),
                                   str(workers), json.dumps(options), str(int(args.part_mb * 1e6))],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
            if done.returncode:
                raise SystemExit(done.stderr[-2000:])
            got = json.loads(done.stdout.strip().splitlines()[-1])
            return got["seconds"], got["parent_cpu"]

        parts = partial(run, str(HERE.parent / "src"))
        baseline = partial(run, args.baseline_src)

        methods = {"tokenizers encode_batch_fast, 1 core (ceiling)": ceiling,
                   "prepare, parts, 1 worker": lambda: parts(1), "prepare, parts, 2 workers": lambda: parts(2),
                   "parts, 2 workers, quarter size": lambda: parts(2, small)}
        if args.baseline_src:
            methods.update({"prepare, baseline, 1 worker": lambda: baseline(1),
                            "prepare, baseline, 2 workers": lambda: baseline(2),
                            "baseline, 2 workers, quarter size": lambda: baseline(2, small)})
        best: dict[str, tuple[float, float | None]] = {}
        for _ in range(args.repeats):  # interleaved, best of: the machine's load varies minute to minute
            for name, method in methods.items():
                sec, cpu = method()
                old = best.get(name)
                best[name] = (min(sec, old[0]) if old else sec,
                              None if cpu is None else min(cpu, old[1]) if old else cpu)
        for name, (sec, cpu) in best.items():
            size = small_mb if "quarter" in name else mb
            marginal = None
            if name.endswith("2 workers") and cpu is not None:
                quarter = best[("parts" if "parts" in name else "baseline") + ", 2 workers, quarter size"][1]
                marginal = (cpu - quarter) / (mb - small_mb)
            rows.append((shape, name, size, sec, cpu, marginal))
    print(f"{os.cpu_count()} cores; vocab {args.vocab}; parts of {args.part_mb} MB; best of {args.repeats}")
    print(f"{'shape':9s} {'method':42s} {'MB':>5s} {'seconds':>8s} {'MB/s':>6s} {'parent CPU s/MB':>15s} "
          f"{'marginal':>9s}")
    for shape, name, mb, sec, cpu, marginal in rows:
        per_mb = "" if cpu is None else f"{cpu / mb:15.4f}"
        extra = "" if marginal is None else f" {marginal:9.4f}"
        print(f"{shape:9s} {name:42s} {mb:5.1f} {sec:8.2f} {mb / sec:6.2f} {per_mb:>15s}{extra}")
    print(f"end: {uptime()}")


if __name__ == "__main__":
    main()
