"""A stage's ``expect``: targets, ``on_miss`` and ``extend``, parsed and checked at the door.

``expect`` maps metric names to targets (``{ppl: {wiki: "< 20"}, arithmetic: "> 0.4"}``; a task name alone
means its first metric, ``arithmetic`` → ``arithmetic/acc``) and may carry two keys of its own:

- ``on_miss``: ``continue`` (log and go on, the default), ``pause`` (finish the stage, then pause the run),
  ``extend`` (train the stage longer and evaluate again) or ``stop`` (end the run; exit code 1);
- ``extend``: ``{steps | tokens | epochs: X, times: K}`` — each extension adds X to the stage's budget, at
  most K times; when the targets are still missed after K, the run continues (and says so).

What is done at a stage's end lives in ``syllabus.plan.decisions``; this module only reads the spec
(pure Python, no torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ON_MISS = ("continue", "pause", "extend", "stop")
TARGET = re.compile(r"\s*(<=|>=|<|>|==)\s*([-+0-9.eE]+)\s*")


@dataclass(frozen=True)
class Extension:
    steps: int | None = None
    tokens: float | None = None
    epochs: float | None = None
    times: int = 1


@dataclass(frozen=True)
class Expectation:
    targets: dict[str, str] = field(default_factory=dict)  # metric key → "< 20"
    on_miss: str = "continue"
    extend: Extension | None = None


def parse_expect(expect: dict, where: str = "expect") -> tuple[Expectation | None, list[str]]:
    """(the expectation, problems): one line per problem, naming the field and the allowed values."""
    problems: list[str] = []
    on_miss = expect.get("on_miss", "continue")
    if on_miss not in ON_MISS:
        problems.append(f"{where}.on_miss: must be one of {', '.join(ON_MISS)} (got {on_miss!r})")
    extension = None
    if "extend" in expect:
        extension, found = _parse_extension(expect["extend"], f"{where}.extend")
        problems += found
    elif on_miss == "extend":
        problems.append(f"{where}.extend: on_miss: extend needs extend: {{steps | tokens | epochs: X, times: K}}")
    targets = dict(_flatten({k: v for k, v in expect.items() if k not in ("on_miss", "extend")}))
    for key, target in targets.items():
        if not TARGET.fullmatch(target):
            problems.append(f"{where}.{key.replace('/', '.')}: a target is '<op> number' with op one of "
                            f"<, <=, >, >=, == (got {target!r})")
    if (on_miss != "continue" or extension) and not targets:
        problems.append(f"{where}: on_miss and extend need at least one target (e.g. arithmetic: \"> 0.5\")")
    return (None if problems else Expectation(targets, on_miss, extension)), problems


def _parse_extension(spec, where: str) -> tuple[Extension | None, list[str]]:
    if not isinstance(spec, dict):
        return None, [f"{where}: must be a mapping {{steps | tokens | epochs: X, times: K}} (got {spec!r})"]
    unknown = sorted(set(spec) - {"steps", "tokens", "epochs", "times"})
    if unknown:
        return None, [f"{where}.{unknown[0]}: not a field (fields: steps, tokens, epochs, times)"]
    given = [k for k in ("steps", "tokens", "epochs") if spec.get(k) is not None]
    if len(given) != 1:
        return None, [f"{where}: give exactly one of steps, tokens, epochs (got {', '.join(given) or 'none'})"]
    amount, times = spec[given[0]], spec.get("times", 1)
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount <= 0 or \
            (given[0] == "steps" and not isinstance(amount, int)):
        return None, [f"{where}.{given[0]}: must be a positive {'integer' if given[0] == 'steps' else 'number'} "
                      f"(got {amount!r})"]
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        return None, [f"{where}.times: must be an integer >= 1 (got {times!r})"]
    return Extension(**{given[0]: amount}, times=times), []


def _flatten(expect: dict, prefix: str = ""):
    for key, value in expect.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", str(value)


def holds(value: float, target: str) -> bool:
    """Whether ``value`` meets ``target`` ("< 20", ">= 0.5")."""
    match = TARGET.fullmatch(target)
    if not match:
        return False
    op, bound = match.group(1), float(match.group(2))
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound,
            "==": value == bound}[op]
