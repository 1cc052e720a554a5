"""``syllabus export CHECKPOINT --format hf OUT``: a folder ``transformers`` loads offline."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder, a run folder (its newest valid checkpoint), or a "
                        "plan run folder (the last finished stage's final checkpoint)")
    parser.add_argument("--stage", default=None, metavar="NAME", help="in a plan run folder: this stage's checkpoint")
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--format", default="hf", choices=["hf"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def run(args: argparse.Namespace) -> int:
    from syllabus.export import export_checkpoint
    from syllabus.plan.run_folder import find_checkpoint

    checkpoint = find_checkpoint(args.checkpoint, args.stage)
    out = export_checkpoint(checkpoint, args.out, format=args.format, dtype=args.dtype)
    print(f"exported {checkpoint} to {out}")
    return 0
