"""The plan's data, checked at the door: before a tokenizer is trained, a warning printed or a file written.

``check_plan_data`` finds every source's files (``data.sources.missing_sources``: one line per missing source,
relative paths named as such, the demo corpus's with the command that builds it) and counts each source's
held-out documents (:mod:`syllabus.data.held_out`). A source scored for perplexity, which ``expect`` targets, merges and the
forgetting gate read, must hold out at least one document: one that holds out none is refused in one line
naming the source and the ways out (a val file, a larger ``val_fraction``, or dropping it from ``perplexity``),
never evaluated as nothing.
"""

from __future__ import annotations

from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.plan import PlanConfig
from syllabus.data.held_out import HeldOut, count_held_out, val_fraction_of
from syllabus.data.sources import missing_sources


def check_plan_data(plan: PlanConfig) -> dict[str, HeldOut]:
    """Every source's held-out count (for the plan table); raises ``ConfigError`` (one line per problem) for a
    source that cannot be found or a perplexity domain with no held-out document."""
    problems = missing_sources({f"sources.{name}": plan.source_spec(name).path for name in plan.sources})
    evaluations = [("evaluation", plan.evaluation)] + [(f"stages.{i}.evaluation", s.evaluation)
                                                       for i, s in enumerate(plan.stages) if s.evaluation]
    for where, spec in evaluations:
        for task, options in spec.task_options.items():
            if options.items is not None and not Path(options.items).is_file():
                problems += missing_sources({f"{where}.task_options.{task}.items": options.items})
    if problems:
        raise ConfigError(problems)
    held = {name: count_held_out(plan.source_spec(name)) for name in plan.sources}
    users: dict[str, list[str]] = {}
    for i, stage in enumerate(plan.stages):
        for domain in plan.stage_evaluation(i).perplexity:
            uses = ["perplexity"] + (["merge"] if stage.merge else [])
            uses += ["expect"] if domain in (stage.expect.get("ppl") or {}) else []
            users.setdefault(domain, []).append(f"stage '{stage.name}' ({', '.join(uses)})")
    for domain in plan.forgetting.domains:
        users.setdefault(domain, []).append("forgetting.watch")
    for domain, used_by in users.items():
        count = held.get(domain)
        if count is not None and count.exact and count.docs == 0:
            problems.append(no_held_out_line(plan, domain, count, used_by))
    if problems:
        raise ConfigError(problems)
    return held


def no_held_out_line(plan: PlanConfig, name: str, count: HeldOut, used_by: list[str]) -> str:
    spec = plan.source_spec(name)
    fraction = val_fraction_of(spec)
    larger = min(0.5, float(f"{max(10 * fraction, 10 / max(1, count.total)):.1g}"))  # ~10 documents or more
    return (f"sources.{name}: holds out 0 of its {count.total:,} documents ({count.rule}), so it can never be "
            f"evaluated, yet {', '.join(used_by)} scores it; give it a val file (val.jsonl beside "
            f"its training files), a larger split (`val_fraction: {larger:g}` in sources.{name}), or drop it "
            f"from perplexity")
