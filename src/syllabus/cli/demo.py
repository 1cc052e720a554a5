"""``syllabus demo``: build the demo corpus when absent, then run ``plans/demo.yaml`` on the CPU."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", default="plans/demo.yaml", help="the plan (default: plans/demo.yaml)")
    parser.add_argument("--corpus", default="data/demo-corpus", help="where the demo corpus is (built if absent)")
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a plan field")


def run(args: argparse.Namespace) -> int:
    from syllabus.config.errors import ConfigError
    from syllabus.config.load import load_config
    from syllabus.config.plan import PlanConfig

    if not Path(args.plan).is_file():
        raise ConfigError(f"--plan: {args.plan} not found (run from the syllabus checkout, or pass --plan)")
    from syllabus.config.source import SourceSpec

    corpus = Path(args.corpus)
    plan = load_config(PlanConfig, args.plan, args.set)
    sources = {name: (value if name not in ("wiki", "reasoning", "math", "code") else
                      value.model_copy(update={"path": str(corpus / name)}) if isinstance(value, SourceSpec)
                      else str(corpus / name)) for name, value in plan.sources.items()}
    plan = plan.model_copy(update={"sources": sources})
    if not (corpus / "SOURCES.md").exists():
        from syllabus.data.corpus import build_demo_corpus

        build_demo_corpus(corpus)
    from syllabus.plan.runner import run_plan

    summary = run_plan(plan, args.out)
    print(f"{summary['status']}: run folder {summary['run_dir']}" +
          (f"\nreport: {summary['report']}" if "report" in summary else ""))
    return 0
