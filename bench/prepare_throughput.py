"""Prepare throughput (MB/s of raw text) on this machine vs HF tokenizers' own encode_batch.

    .venv/bin/python bench/prepare_throughput.py [--mb 20] [--vocab 8192]

Input: the demo corpus (built into a temp folder), concatenated into one JSONL of about ``--mb`` MB.
Rows: ``encode_batch`` on the texts already in memory (the ceiling: no reading, cleaning, writing),
then ``prepare_shards`` with 1 worker (main-process encode_batch, parallel in Rust) and 2 workers
(two processes). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from syllabus.data.cleaning import CleaningOptions  # noqa: E402
from syllabus.config.source import as_source_spec  # noqa: E402
from syllabus.data.corpus import build_demo_corpus, demo_sources  # noqa: E402
from syllabus.data.records import RecordRenderer  # noqa: E402
from syllabus.data.sources import read_documents  # noqa: E402
from syllabus.data.prepare import prepare_shards  # noqa: E402
from syllabus.data.tokenizer import train_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20)
    parser.add_argument("--vocab", type=int, default=8192)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    build_demo_corpus(tmp / "demo", echo=lambda s: None)
    texts = [text for d, source in demo_sources(tmp / "demo").items()
             for text in read_documents(tmp / "demo" / d / "train.jsonl", renderer=RecordRenderer(as_source_spec(source)))]
    raw = tmp / "all.jsonl"
    size, i = 0, 0
    with open(raw, "w") as f:
        while size < args.mb * 1e6:
            line = json.dumps({"text": f"{i} {texts[i % len(texts)]}"}) + "\n"  # unique, so dedup keeps all
            f.write(line)
            size += len(line.encode())
            i += 1
    docs = [json.loads(line)["text"] for line in open(raw)]
    mb = raw.stat().st_size / 1e6
    tok = train_tokenizer(texts[:2000], args.vocab)
    rows = []
    t = time.perf_counter()
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    for j in range(0, len(docs), 256):
        encode(docs[j: j + 256], add_special_tokens=False)
    rows.append(("HF encode_batch, texts in memory (ceiling)", time.perf_counter() - t))
    for workers in (1, 2):
        t = time.perf_counter()
        prepare_shards([str(raw)], tok, tmp / f"out{workers}", workers=workers, echo=lambda s: None,
                       cleaning=CleaningOptions(exact_dedup=True))
        rows.append((f"prepare_shards workers={workers} (read+dedup+split+write)", time.perf_counter() - t))
    print(f"input: {mb:.1f} MB raw JSONL, {len(docs):,} docs, vocab {args.vocab}, {os.cpu_count()} cores")
    print(f"{'method':55s} {'seconds':>8s} {'MB/s':>7s}")
    for name, sec in rows:
        print(f"{name:55s} {sec:8.2f} {mb / sec:7.2f}")


if __name__ == "__main__":
    main()
