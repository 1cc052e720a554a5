"""Records before text: prepare and streaming throughput by record shape, and data wait for a chat source.

    python bench/record_throughput.py [--mb 8] [--steps 40]

For each shape of the demo corpus (text: wiki + code, chat: reasoning, template: math with ``steps: tags``)
the records are repeated (each copy made unique) into one JSONL file of about ``--mb`` MB, then:

- ``prepare``: ``prepare_shards`` with one worker (read, render, clean, dedup, tokenize, write), MB/s of raw
  records;
- ``stream``: one epoch of a ``TextStreamDataset`` over the same file (read, render, tokenize, pack), MB/s;
- data wait: ``syllabus pretrain`` semantics (``PreTrainer``) on the chat file streamed, the ``tiny`` preset
  (CPU, fp32, micro batch 8 x 256 tokens): the mean of the logged ``data_wait`` (share of step time spent
  waiting for batches) over all steps and over the steps after the first (which waits for the first unit).

Nothing is downloaded; the demo corpus is built from installed packages into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from syllabus.config.source import SourceSpec, as_source_spec  # noqa: E402
from syllabus.data.corpus import build_demo_corpus, demo_sources  # noqa: E402
from syllabus.data.prepare import prepare_shards  # noqa: E402
from syllabus.data.records import RecordRenderer  # noqa: E402
from syllabus.data.sources import read_documents  # noqa: E402
from syllabus.data.text_stream import TextStreamDataset  # noqa: E402
from syllabus.data.tokenizer import train_tokenizer  # noqa: E402

SHAPES = {"text": ["wiki", "code"], "chat": ["reasoning"], "template": ["math"]}


def replicated(corpus: Path, domains: list[str], out: Path, mb: float) -> tuple[Path, dict]:
    """Records of ``domains`` repeated into ``out`` up to ``mb`` MB; each copy gets a unique ``id`` and a unique
    first field so that exact dedup keeps every one."""
    records = [json.loads(line) for d in domains for line in open(corpus / d / "train.jsonl")]
    source = demo_sources(corpus)[domains[0]]
    options = {k: v for k, v in source.items() if k != "path"} if isinstance(source, dict) else {}
    size, i = 0, 0
    with open(out, "w") as f:
        while size < mb * 1e6:
            record = dict(records[i % len(records)])
            copy = i // len(records)
            if "text" in record:
                record["text"] = f"{copy} {record['text']}"
            elif "messages" in record:
                record["messages"] = [{**record["messages"][0], "content": f"{copy} {record['messages'][0]['content']}"},
                                      *record["messages"][1:]]
            else:
                record["problem"] = f"{copy} {record['problem']}"
            line = json.dumps(record) + "\n"
            f.write(line)
            size += len(line.encode())
            i += 1
    return out, options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--vocab", type=int, default=8192)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "demo"
    build_demo_corpus(corpus, echo=lambda s: None)
    texts = [t for d, src in demo_sources(corpus).items()
             for t in read_documents(corpus / d / "train.jsonl", renderer=RecordRenderer(as_source_spec(src)))]
    tok = train_tokenizer(texts[:3000], args.vocab)
    rows = []
    files = {}
    for shape, domains in SHAPES.items():
        path, options = replicated(corpus, domains, tmp / f"{shape}.jsonl", args.mb)
        files[shape] = (path, options)
        mb = path.stat().st_size / 1e6
        t = time.perf_counter()
        prepare_shards([str(path)], tok, tmp / f"out-{shape}", workers=1, records=options, echo=lambda s: None)
        rows.append((shape, "prepare (workers=1)", mb, time.perf_counter() - t))
        stream = TextStreamDataset(SourceSpec(path=str(path), **options), tok, shuffle=False, val_fraction=0.0)
        t = time.perf_counter()
        stream.count_epoch_tokens()
        rows.append((shape, "stream one epoch (render+tokenize)", mb, time.perf_counter() - t))
    waits = data_wait(files["chat"], tok, tmp, args.steps)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; vocab {args.vocab}")
    print(f"{'shape':9s} {'what':38s} {'MB':>6s} {'seconds':>8s} {'MB/s':>7s}")
    for shape, what, mb, sec in rows:
        print(f"{shape:9s} {what:38s} {mb:6.1f} {sec:8.2f} {mb / sec:7.2f}")
    whole, after_first = sum(waits) / len(waits), sum(waits[1:]) / max(1, len(waits) - 1)
    print(f"data wait, chat source streamed, tiny model, micro batch 8 x 256, {args.steps} steps: "
          f"{whole:.2%} of step time over all steps, {after_first:.2%} after the first "
          f"(the first step waits for the first unit: {waits[0]:.1%})")
    print(json.dumps({"mb_per_s": {f"{shape}/{what.split()[0]}": round(mb / sec, 3) for shape, what, mb, sec in rows},
                      "data_wait": round(whole, 5), "data_wait_after_first": round(after_first, 5)}))


def data_wait(chat: tuple[Path, dict], tok, tmp: Path, steps: int) -> list[float]:
    from syllabus import PreTrainer, PreTrainingConfig
    from syllabus.data import save_tokenizer

    path, options = chat
    save_tokenizer(tok, tmp / "tok.json")
    cfg = PreTrainingConfig(data_sources=[str(path)], tokenizer=str(tmp / "tok.json"), out_dir=str(tmp / "run"),
                            max_steps=steps, micro_batch_size=8, max_seq_length=256, warmup_steps=2,
                            eval_interval=10 ** 6, log_interval=1, mixed_precision="fp32", device="cpu",
                            **options)
    PreTrainer(cfg).train()
    return [json.loads(line)["data_wait"] for line in open(tmp / "run" / "metrics.jsonl") if '"data_wait"' in line]


if __name__ == "__main__":
    main()
