"""``syllabus export CHECKPOINT --format hf OUT``: a folder ``transformers`` loads offline."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its newest valid checkpoint)")
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--format", default="hf", choices=["hf"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def run(args: argparse.Namespace) -> int:
    from syllabus.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, format=args.format, dtype=args.dtype)
    print(f"exported {args.checkpoint} to {out}")
    return 0
