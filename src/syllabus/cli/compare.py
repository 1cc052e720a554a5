"""``syllabus compare RUN_A RUN_B [...] --out DIR``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="plan run folders made by `syllabus run`")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for compare.md and its plots")


def run(args: argparse.Namespace) -> int:
    from syllabus.plan.compare import compare_runs

    print(f"comparison: {compare_runs(args.runs, args.out)}")
    return 0
