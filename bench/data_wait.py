"""How long the step loop waits for its batches from a streamed chat source, with and without reading ahead.

    .venv/bin/python bench/data_wait.py                # 30 steps, a small model, seq 256, micro-batch 8
    .venv/bin/python bench/data_wait.py --steps 60 --hidden 256

The source is raw JSONL chat records (``format: chat``, ``loss_on: assistant``: rendered, tokenized and packed on
the fly, the slowest kind of source) built from the Python standard library's source files. The same Trainer runs
twice on it, logging every step: ``ahead`` is the trainer as it is (batches read ahead by ``data.prefetch``'s
thread), ``inline`` sets the prefetcher's ``depth`` to 0, so each step is read when asked (the old behaviour). Per step, the wait is ``data_wait`` x the step's time (``metrics.jsonl`` fields). Reported: the
first step's wait and the median and maximum of the others, in milliseconds, and the median step time. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from syllabus.config import PreTrainingConfig  # noqa: E402
from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.config.source import SourceSpec  # noqa: E402
from syllabus.data import open_batches, train_tokenizer  # noqa: E402
from syllabus.model import Transformer  # noqa: E402
from syllabus.train.metrics import MetricsLog  # noqa: E402
from syllabus.train.trainer import Trainer  # noqa: E402


def chat_file(folder: Path, limit_bytes: int = 3_000_000) -> Path:
    """Conversations from stdlib sources: the user asks about a file, the assistant answers with its text."""
    stdlib, used = Path(sysconfig.get_paths()["stdlib"]), 0
    path = folder / "chat.jsonl"
    with open(path, "w") as f:
        for source in sorted(stdlib.glob("*.py")):
            text = source.read_text(encoding="utf-8", errors="replace")
            for start in range(0, len(text), 4000):
                piece = text[start:start + 4000]
                f.write(json.dumps({"messages": [
                    {"role": "system", "content": "You answer with Python source."},
                    {"role": "user", "content": f"Show part {start // 4000 + 1} of {source.name}."},
                    {"role": "assistant", "content": piece}]}) + "\n")
                used += len(piece)
            if used > limit_bytes:
                return path
    return path


def run(variant: str, path: Path, tok, args, out: Path) -> dict:
    torch.manual_seed(0)
    model = Transformer(model_config_for("tiny", vocab_size=tok.get_vocab_size(), hidden_size=args.hidden,
                                         num_hidden_layers=2, num_attention_heads=4, intermediate_size=args.hidden * 3,
                                         max_position_embeddings=args.seq))
    config = PreTrainingConfig(mixed_precision="fp32", device="cpu", out_dir=str(out), max_seq_length=args.seq,
                               micro_batch_size=args.batch, max_steps=args.steps, log_interval=1,
                               save_interval=10**6, warmup_steps=1)
    batches = open_batches({"chat": SourceSpec(path=str(path), format="chat", loss_on="assistant")},
                           {"chat": 1.0}, tok, seed=0)
    trainer = Trainer(config, model, tok, batches, out_dir=out, metrics=MetricsLog(out))
    if variant == "inline":
        trainer.batches.depth = 0  # no read-ahead: every step is read when asked
    trainer.save = lambda required=True: None  # timing the loop, not the disk
    trainer.train()
    steps = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    step_s = [r["tokens_per_step"] / r["tokens_per_sec"] for r in steps]
    wait_ms = [1000 * r["data_wait"] * s for r, s in zip(steps, step_s)]
    return {"first_ms": wait_ms[0], "median_ms": statistics.median(wait_ms[1:]), "max_ms": max(wait_ms[1:]),
            "step_ms": 1000 * statistics.median(step_s[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = chat_file(tmp)
        texts = [json.loads(line)["messages"][2]["content"] for line in open(path)][:300]
        tok = train_tokenizer(texts, 2048)
        rows = {v: run(v, path, tok, args, tmp / v) for v in ("inline", "ahead")}
    print(f"streamed chat source, {args.steps} steps, hidden {args.hidden}, seq {args.seq}, micro-batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    for variant, row in rows.items():
        print(f"  {variant:6s}: data wait first step {row['first_ms']:.1f} ms, later steps median "
              f"{row['median_ms']:.2f} ms (max {row['max_ms']:.2f} ms); step {row['step_ms']:.1f} ms")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
