"""Held-out loss at an equal token budget: syllabus vs Hugging Face ``LlamaForCausalLM``. Not a test.

    .venv/bin/python bench/loss_at_budget.py [--steps 60] [--shape cpu-v8k] [--dtype bf16] [--compile]

Same data (the demo corpus: prose, reasoning, maths, Python from installed packages, as 8k-BPE shards),
same batches in the same order (same seed), same shape and parameter count, same initial weights (the
reference loads syllabus's state dict: the names are identical), same learning-rate schedule (warm-up +
cosine, ``syllabus.train.schedule.lr_at``), same clipping and fused AdamW betas/weight decay. syllabus runs
its trainer's step; the reference a plain loop. The two alternate in blocks of ``--block`` steps so wall
time shares the machine's noise. Reported: final held-out loss (token-weighted mean over ``--eval-batches``
validation batches, fp32) and the wall time of the training steps. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from train_throughput import SHAPES, prepared_data, reference_runner, syllabus_runner  # noqa: E402

from syllabus.data import iter_eval_batches  # noqa: E402
from syllabus.train.schedule import lr_at  # noqa: E402


@torch.no_grad()
def held_out_loss(model, loss_of, batches) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        n = int((batch["labels"] != -100).sum())
        total += float(loss_of(model, batch)) * n
        count += n
    model.train()
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps (x micro batch x seq_len tokens)")
    parser.add_argument("--shape", default="cpu-v8k", choices=list(SHAPES))
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--block", type=int, default=5, help="steps per turn when alternating")
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--weight-decay", type=float, default=0.1,
                        help="both systems (syllabus exempts norms and embeddings, the plain reference loop does not)")
    parser.add_argument("--trace", action="store_true", help="print both training losses after every block")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batch order (both systems)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "syllabus-bench"))
    args = parser.parse_args()
    shards, tokenizer = prepared_data(Path(args.cache))
    _, seq_len, mb = SHAPES[args.shape]
    schedule = lambda step: lr_at(step, peak=args.lr, minimum=args.lr / 10, warmup=args.warmup,  # noqa: E731
                                  total=args.steps, schedule="cosine", decay_fraction=0.2)
    mode = "compiled" if args.compile else "eager"
    ours = syllabus_runner(args.shape, args.dtype, mode, shards, tokenizer, Path(tempfile.mkdtemp()),
                           lr=args.lr, max_steps=args.steps, warmup=args.warmup, min_lr=args.lr / 10,
                           seed=args.seed, weight_decay=args.weight_decay)
    ref = reference_runner(args.shape, args.dtype, args.compile, shards, tokenizer, lr=args.lr, schedule=schedule,
                           seed=args.seed, weight_decay=args.weight_decay)
    ref.model.load_state_dict(ours.model.state_dict())  # identical start
    n_ours = sum(p.numel() for p in ours.model.parameters())
    n_ref = sum(p.numel() for p in ref.model.parameters())

    wall = {"syllabus": 0.0, "reference": 0.0}
    done = 0
    while done < args.steps:
        block = min(args.block, args.steps - done)
        last = {}
        for name, r in (("syllabus", ours), ("reference", ref)):
            for _ in range(block):
                seconds, _, loss = r.step()
                wall[name] += seconds
            last[name] = float(loss)
        done += block
        if args.trace:
            print(f"step {done:4d}  train loss  syllabus {last['syllabus']:.4f}  reference {last['reference']:.4f}",
                  flush=True)

    vocab = SHAPES[args.shape][0]["vocab_size"]

    def val_batches():
        for b in iter_eval_batches(str(shards), tokenizer, seq_len=seq_len, batch_size=mb,
                                   max_batches=args.eval_batches):
            yield {k: torch.where(v >= 0, v % vocab, v) for k, v in b.items()}

    losses = {
        "syllabus": held_out_loss(ours.model, lambda m, b: m(b["input_ids"], b["labels"]), val_batches()),
        "reference": held_out_loss(ref.model, lambda m, b: m(input_ids=b["input_ids"], labels=b["labels"],
                                                             shift_labels=b["labels"]).loss, val_batches()),
    }
    tokens = args.steps * seq_len * mb
    print(f"shape {args.shape} ({n_ours:,} params syllabus, {n_ref:,} reference), {args.dtype}, "
          f"{'compiled' if args.compile else 'eager'}, {args.steps} steps = {tokens:,} tokens, lr {args.lr:g}, "
          f"seed {args.seed}")
    print(f"{'system':10s} {'val loss':>9s} {'wall s':>8s} {'tok/s':>8s}")
    for name in ("syllabus", "reference"):
        print(f"{name:10s} {losses[name]:9.4f} {wall[name]:8.1f} {tokens / wall[name]:8,.0f}")
    print(json.dumps({"shape": args.shape, "dtype": args.dtype, "compile": args.compile, "tokens": tokens,
                      "lr": args.lr, "seed": args.seed, "weight_decay": args.weight_decay,
                      "params": {"syllabus": n_ours, "reference": n_ref},
                      "val_loss": {k: round(v, 4) for k, v in losses.items()},
                      "wall_seconds": {k: round(v, 1) for k, v in wall.items()}}))


if __name__ == "__main__":
    main()
