"""Error bars: the binomial standard error of a proportion, and when a change is more than noise."""

import math
import random

import pytest

from syllabus.evaluate.error_bars import binomial_stderr, significant_change, with_stderr


def test_binomial_stderr_matches_the_formula_and_a_simulation():
    assert binomial_stderr(0.3, 10) == pytest.approx(0.1449, abs=1e-4)  # the report's "0.300 ± 0.145 (n=10)"
    assert binomial_stderr(0.0, 50) == 0.0 and binomial_stderr(1.0, 50) == 0.0
    assert math.isnan(binomial_stderr(0.5, 0))
    # The spread of accuracies measured on n fresh items of a model that is right with probability p.
    rng, p, n = random.Random(0), 0.3, 40
    draws = [sum(rng.random() < p for _ in range(n)) / n for _ in range(4000)]
    mean = sum(draws) / len(draws)
    spread = math.sqrt(sum((d - mean) ** 2 for d in draws) / (len(draws) - 1))
    assert spread == pytest.approx(binomial_stderr(p, n), rel=0.05)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binomial_stderr(1.5, 10)


def test_with_stderr_uses_the_subgroup_n():
    scores = with_stderr({"acc": 0.5, "acc_1digit": 0.25, "acc_1digit_n": 4.0, "n": 16.0, "ppl": 12.0})
    assert scores["acc_stderr"] == pytest.approx(math.sqrt(0.25 / 16))
    assert scores["acc_1digit_stderr"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert "ppl_stderr" not in scores and "n_stderr" not in scores


def test_significant_change_needs_two_standard_errors_of_the_difference():
    se = binomial_stderr(0.3, 100)  # 0.0458; the difference's SE is sqrt(2) times that, 0.0648
    assert not significant_change(0.30, se, 0.42, se)  # 0.12 < 2 × 0.0648
    assert significant_change(0.30, se, 0.44, se)      # 0.14 > 0.1296
    assert not significant_change(0.3, math.nan, 0.9, 0.01)
