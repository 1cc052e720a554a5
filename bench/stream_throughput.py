"""Streamed tokens/s of one rank: a raw source read, rendered and tokenized on the fly (in this process, or ahead
in DataLoader worker processes) against the same source prepared into shards.

    .venv/bin/python bench/stream_throughput.py [--mb 8] [--seq-len 1024] [--micro-batch 8] [--world-size 1]

For each record shape of the demo corpus (``record_throughput.replicated``: text, chat, template) the file is
opened with ``open_batches`` as rank 0 of ``--world-size`` (every rank of a raw source reads and tokenizes the
whole stream and keeps its rows, so the per-rank rate is what a trainer sees) and ``next_batch`` is called until
the epoch is nearly used up; the figure is tokens handed to the trainer per second (wall clock, including the
workers' start-up). ``TOKENIZERS_PARALLELISM=false``: each process tokenizes on one core. Prints ``uptime``.
Not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from record_throughput import SHAPES, replicated  # noqa: E402
from syllabus.config.source import SourceSpec, as_source_spec  # noqa: E402
from syllabus.data import open_batches  # noqa: E402
from syllabus.data.corpus import build_demo_corpus, demo_sources  # noqa: E402
from syllabus.data.prepare import prepare_shards  # noqa: E402
from syllabus.data.records import RecordRenderer  # noqa: E402
from syllabus.data.sources import read_documents  # noqa: E402
from syllabus.data.tokenizer import train_tokenizer  # noqa: E402


def rate(source, tok, tokens: int, args) -> float:
    batches = open_batches({"s": source}, {"s": 1.0}, tok, num_workers=args.workers_now,
                           world_size=args.world_size)
    step = args.micro_batch * args.seq_len
    start, seen = time.perf_counter(), 0
    while seen + step * args.world_size < tokens * 0.8:
        batches.next_batch(args.micro_batch, args.seq_len)
        seen += step * args.world_size
    seconds = time.perf_counter() - start
    batches.close()
    return seen / args.world_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=8192)
    args = parser.parse_args()
    print("start:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp())
    build_demo_corpus(tmp / "demo", echo=lambda s: None)
    texts = [t for d, src in demo_sources(tmp / "demo").items()
             for t in read_documents(tmp / "demo" / d / "train.jsonl", renderer=RecordRenderer(as_source_spec(src)))]
    tok = train_tokenizer(texts[:3000], args.vocab)
    print(f"{'shape':9s} {'source':34s} {'tokens/s per rank':>18s}")
    for shape, domains in SHAPES.items():
        raw, options = replicated(tmp / "demo", domains, tmp / f"{shape}.jsonl", args.mb)
        report = prepare_shards([str(raw)], tok, tmp / f"{shape}-prepared", workers=2, records=options,
                                val_fraction=0.0, part_bytes=1_000_000, echo=lambda s: None)
        tokens = report["splits"]["train"]["tokens"]
        spec = SourceSpec.model_validate({"path": str(raw), **options})
        for label, source, workers in (("prepared shards", str(tmp / f"{shape}-prepared"), 0),
                                       ("raw, in the trainer's process", spec, 0),
                                       ("raw, 1 worker process ahead", spec, 1),
                                       ("raw, 2 worker processes ahead", spec, 2)):
            args.workers_now = workers
            print(f"{shape:9s} {label:34s} {rate(source, tok, tokens, args):18,.0f}", flush=True)
    print("end:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
