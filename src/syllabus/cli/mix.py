"""``syllabus mix search PLAN --stage NAME``: choose a stage's mixture from short proxy runs (docs/mix-search.md)."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mix_command", metavar="ACTION", required=True)
    search = sub.add_parser("search", help="search a stage's mixture with short proxy runs",
                            description="Sample K mixtures of the stage's sources and replay share, train one short "
                                        "ordinary run per mixture, fit weights -> objective, recommend a mixture. "
                                        "Running it again continues the search.")
    search.add_argument("plan", help="plan YAML file")
    search.add_argument("--stage", required=True, help="the stage whose mixture is searched")
    search.add_argument("--out", help="search folder (default: runs/<plan name>-mix-<stage>)")
    search.add_argument("-k", "--proxies", type=int, default=16, help="proxies in the fit, plan's and uniform "
                        "mixture included (default 16)")
    search.add_argument("--holdout", type=int, default=0, help="extra proxies kept out of the fit to test it")
    search.add_argument("--proxy-steps", type=int, help="each proxy's budget in steps (default: 1/8 of the stage's)")
    search.add_argument("--proxy", action="append", default=[], metavar="KEY=VALUE",
                        help="change every proxy's plan, e.g. model.overrides.hidden_size=64 (proxy mode)")
    search.add_argument("--bound", action="append", default=[], metavar="NAME=MIN:MAX",
                        help="a component's share bounds, e.g. math=0.05:0.5 (components: the stage's sources, "
                             "and replay)")
    search.add_argument("--max-epochs", type=float, default=4.0,
                        help="most epochs of a source the full stage may read (default 4; 0: no limit)")
    search.add_argument("--objective", help="default: mean held-out loss over the stage's domains and the ones its "
                        "forgetting gate watches; or domain=weight,... or <task>/<metric> (e.g. arithmetic/accuracy)")
    search.add_argument("--from-run", metavar="RUN_DIR",
                        help="branch mode: every proxy starts from this paused run's final of the stage before")
    search.add_argument("--parallel", type=int, default=1, help="proxies at a time, one process each")
    search.add_argument("--threads", type=int, help="torch threads per proxy (default: cores / parallel); equal "
                        "threads give equal tables")
    search.add_argument("--seed", type=int, default=0, help="seeds the sampled mixtures")
    search.add_argument("--write", metavar="PLAN_OUT", help="write a copy of the plan with the recommended mixture")


def _bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    from syllabus.config.errors import ConfigError

    found = {}
    for item in items:
        name, _, span = item.partition("=")
        low, _, high = span.partition(":")
        try:
            found[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ConfigError(f"--bound {item!r}: expected NAME=MIN:MAX with shares in [0, 1]") from None
    return found


def run(args: argparse.Namespace) -> int:
    from syllabus.config.errors import ConfigError
    from syllabus.config.load import load_config
    from syllabus.config.plan import PlanConfig

    plan = load_config(PlanConfig, args.plan)
    for flag, value in (("--proxies", args.proxies), ("--parallel", args.parallel)):
        if value < 1:
            raise ConfigError(f"{flag}: must be at least 1 (got {value})")
    from syllabus.mix.output import write_plan
    from syllabus.mix.search import SearchSettings, run_search

    settings = SearchSettings(stage=args.stage, k=args.proxies, holdout=args.holdout, seed=args.seed,
                              proxy_steps=args.proxy_steps, edits=args.proxy, bounds=_bounds(args.bound),
                              max_epochs=args.max_epochs or None, objective=args.objective, parallel=args.parallel,
                              threads=args.threads or max(1, (os.cpu_count() or 1) // args.parallel),
                              from_run=args.from_run)
    out = args.out or f"runs/{plan.name}-mix-{args.stage}"
    summary = run_search(plan, out, settings)
    rec = summary["recommended"]
    print(f"recommended mixture for stage '{args.stage}': " +
          ", ".join(f"{k} {v:.3f}" for k, v in rec["weights"].items()) +
          f" (predicted objective {rec['predicted']:.4f} ± {rec['uncertainty']:.4f}); see {out}/search.md")
    if args.write:
        path = write_plan(args.plan, args.write, args.stage, rec["weights"], f"mix search {out}")
        print(f"wrote {path}")
    return 0
