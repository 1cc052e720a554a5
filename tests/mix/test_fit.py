"""The regression finds a known optimum of a noisy quadratic in the weights, inside the bounds."""

import numpy as np

from syllabus.mix.fit import fit_mixtures, spearman
from syllabus.mix.space import MixSpace, sample_mixtures

CENTRE = {"wiki": 0.25, "reasoning": 0.25, "math": 0.25, "code": 0.25}
OPTIMUM = np.array([0.15, 0.2, 0.45, 0.2])


def objective(w: np.ndarray, rng, noise=0.01) -> float:
    return 3.0 + 4.0 * float(np.sum((w - OPTIMUM) ** 2)) + noise * rng.standard_normal()


def fitted(space, k=24, seed=0):
    rng = np.random.default_rng(seed)
    mixtures = sample_mixtures(space, k, seed)
    rows = [m.weights for m in mixtures]
    y = [objective(np.array([w[n] for n in space.names]), rng) for w in rows]
    return fit_mixtures(space, rows, y, seed=seed, bootstrap=50)


def test_recovers_the_optimum_of_a_noisy_quadratic():
    space = MixSpace.build(CENTRE)
    fit = fitted(space)
    got = np.array([fit.recommended[n] for n in space.names])
    assert np.abs(got - OPTIMUM).max() < 0.05, got
    assert abs(fit.predicted - 3.0) < 0.03 and 0 < fit.uncertainty < 0.1
    assert fit.cv_spearman > 0.8 and fit.cv_rmse < 0.05


def test_the_optimum_stays_inside_the_bounds():
    space = MixSpace.build(CENTRE, {"math": (0.0, 0.3)})  # the true optimum (0.45) is out of bounds
    fit = fitted(space)
    assert space.contains(fit.recommended)
    assert abs(fit.recommended["math"] - 0.3) < 0.02


def test_spearman_is_nan_when_undefined():
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and spearman([1, 2, 3], [2, 4, 9]) == 1.0
