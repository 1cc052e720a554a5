"""``syllabus run PLAN.yaml [--out DIR] [--set key=value] [--pause-after STAGE]``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan YAML file")
    parser.add_argument("--out", help="run folder (default: runs/<plan name>); running again continues it")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a plan field, e.g. stages.0.budget.steps=50 or defaults.micro_batch_size=4")
    parser.add_argument("--pause-after", metavar="STAGE", help="stop cleanly after this stage's evaluation")


def run(args: argparse.Namespace) -> int:
    from syllabus.config.load import load_config
    from syllabus.config.plan import PlanConfig

    plan = load_config(PlanConfig, args.plan, args.set)  # checked before torch is imported
    from syllabus.plan.runner import run_plan
    from syllabus.train.launch import is_main_process

    summary = run_plan(plan, args.out or f"runs/{plan.name}", pause_after=args.pause_after)
    if is_main_process():
        print(f"{summary['status']}: run folder {summary['run_dir']}" +
              (f", report {summary['report']}" if "report" in summary else ""))
    return 0

