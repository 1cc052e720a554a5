"""``syllabus status RUN_DIR [--watch]``: per stage, steps / budget, tokens, rate and ETA, last evaluation,
forgetting-gate events and what was done about them."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a run folder made by `syllabus run`")
    parser.add_argument("--watch", action="store_true", help="refresh until no process runs the plan")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="--watch: seconds between "
                                                                                       "refreshes (default: 5)")


def run(args: argparse.Namespace) -> int:
    from syllabus.plan.status import run_status, watch

    if args.watch:
        watch(args.run_dir, args.interval)
    else:
        print(run_status(args.run_dir)[0])
    return 0
