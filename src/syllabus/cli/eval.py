"""``syllabus eval CHECKPOINT --tasks ppl,hellaswag,... [--limit N] [--data DOMAIN=PATH ...] [--out FILE]``."""

from __future__ import annotations

import argparse

from syllabus.config.errors import ConfigError
from syllabus.config.plan import BENCHMARK_TASKS

TASKS = ",".join(("ppl", *BENCHMARK_TASKS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its newest valid checkpoint)")
    parser.add_argument("--tasks", default="hellaswag,arc,arithmetic", help=f"comma-separated, from {TASKS}")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per task (N batches for ppl)")
    parser.add_argument("--data", action="append", default=[], metavar="DOMAIN=PATH",
                        help="held-out source for ppl (repeatable)")
    parser.add_argument("--seq-len", type=int, default=None, help="ppl sequence length (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="ppl batch size")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--device", default="cpu")


def parse_data(pairs: list[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        domain, sep, path = pair.partition("=")
        if not sep or not domain or not path:
            raise ConfigError(f"--data: expected DOMAIN=PATH, got {pair!r}")
        data[domain] = path
    return data


def run(args: argparse.Namespace) -> int:
    from syllabus.evaluate import evaluate_checkpoint, results_table

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    results = evaluate_checkpoint(args.checkpoint, tasks, limit=args.limit, data=parse_data(args.data),
                                  out=args.out, device=args.device, seq_len=args.seq_len,
                                  batch_size=args.batch_size)
    print(results_table(results))
    return 0
