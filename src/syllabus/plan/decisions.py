"""The decision point at a stage's end: which ``expect`` targets were missed and what to do about it.

``on_miss`` (``syllabus.config.expect``): ``continue`` logs and goes on; ``pause`` finishes the stage and
pauses the run; ``stop`` ends the run (exit code 1; running again evaluates again and decides again);
``extend`` adds the ``extend`` amount to the stage's budget and trains on, at most ``times`` times, then
continues. Every decision is one event record — ``metrics.jsonl``, ``run_state.json``, the report.
"""

from __future__ import annotations

from syllabus.config.expect import Expectation, holds


def lookup(results: dict, key: str) -> float | None:
    """``results[key]``, or the first metric of task ``key`` (``arithmetic`` → ``arithmetic/acc``)."""
    if key in results:
        return results[key]
    primary = sorted(k for k in results if k.startswith(key + "/") and not k.endswith(("/n", "_stderr", "_n",
                                                                                        "/seconds")))
    return results[primary[0]] if primary else None


def missed_targets(expectation: Expectation, results: dict) -> dict[str, float | None]:
    """Metric key → its value (None when it was not measured) for every target not met."""
    missed = {}
    for key, target in expectation.targets.items():
        value = lookup(results, key)
        if value is None or not holds(value, target):
            missed[key] = value
    return missed


def decide(expectation: Expectation, missed: dict, extensions_done: int) -> str:
    """``met``, ``continue``, ``pause``, ``extend``, ``stop`` or ``continue_after_extensions``."""
    if not missed:
        return "met"
    if expectation.on_miss == "extend":
        return "extend" if extensions_done < expectation.extend.times else "continue_after_extensions"
    return expectation.on_miss


def decision_event(stage: str, step: int, decision: str, missed: dict, **extra) -> dict:
    """The record of one decision, as written to metrics.jsonl and kept in run_state.json."""
    return {"step": step, "stage": stage, "event": "decision", "decision": decision,
            "missed": {k: (None if v is None else float(v)) for k, v in missed.items()}, **extra}
