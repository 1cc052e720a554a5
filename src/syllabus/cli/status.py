"""``syllabus status RUN_DIR``: stages done, the current one's step and loss."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run folder made by `syllabus run`")


def run(args: argparse.Namespace) -> int:
    from syllabus.plan.describe import run_status

    print(run_status(args.run_dir))
    return 0
