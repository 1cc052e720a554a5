"""Standard errors of task scores, and when a change between two scores is more than noise.

A task score that is a proportion of ``n`` items (accuracy, exact match, greedy pass@1) has the
binomial standard error ``sqrt(p (1 - p) / n)``: 0.300 over 10 items is 0.300 ± 0.145. Two scores
from independent item draws (or the same items scored by two models) differ by more than noise when
``|a - b| > z · sqrt(se_a² + se_b²)`` — the standard error of the difference; ``z = 2`` by default.
Pure Python: the plan report imports it without torch.
"""

from __future__ import annotations

import math

# Metric names that are proportions of items (the last part of "<task>/<metric>").
PROPORTIONS = ("acc", "acc_norm", "exact_match", "pass@1")


def binomial_stderr(p: float, n: int | float) -> float:
    """Standard error of a proportion ``p`` in [0, 1] measured on ``n`` items; NaN when n < 1."""
    if not n or n < 1 or math.isnan(p):
        return math.nan
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a proportion must lie in [0, 1], got {p}")
    return math.sqrt(p * (1.0 - p) / n)


def is_proportion(metric: str) -> bool:
    """``acc``, ``acc_norm``, ``exact_match``, ``pass@1`` and per-group accuracies such as ``acc_3digit``."""
    return metric in PROPORTIONS or (metric.startswith("acc_") and not metric.endswith(("_stderr", "_n")))


def with_stderr(scores: dict[str, float]) -> dict[str, float]:
    """``scores`` plus ``<metric>_stderr`` for every proportion in it.

    Its ``n`` is ``scores["<metric>_n"]`` when present (a subgroup), else ``scores["n"]``; a score without
    either gets no standard error.
    """
    out = dict(scores)
    for metric, value in scores.items():
        if not is_proportion(metric):
            continue
        n = scores.get(f"{metric}_n", scores.get("n"))
        if n is not None:
            out[f"{metric}_stderr"] = binomial_stderr(float(value), n)
    return out


def significant_change(before: float, se_before: float, after: float, se_after: float, z: float = 2.0) -> bool:
    """True when ``after - before`` exceeds ``z`` standard errors of the difference (False if either SE is NaN)."""
    se = math.sqrt(se_before ** 2 + se_after ** 2)
    if math.isnan(se):
        return False
    return abs(after - before) > z * se
