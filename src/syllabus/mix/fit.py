"""The regression from mixture weights to objective, and the mixture it recommends.

Library: scikit-learn. RegMix (arXiv 2407.01492) fits LightGBM on 512 proxies; a search here has tens, where
gradient-boosted trees (LightGBM's leaves need 20 rows each by default) cannot fit a smooth surface. A
quadratic in the weights with ridge penalty chosen by cross-validation (``PolynomialFeatures(2)`` +
``RidgeCV``) is smooth, has the optimum at an interior point when the data says so, and needs only
``(n+1)(n+2)/2`` rows for ``n`` components; scikit-learn also gives the cross-validation and the pipeline,
and SciPy (its dependency) the bounded optimisation and Spearman's rank correlation.

- Cross-validated error: leave-one-out predictions (``cross_val_predict``), their RMSE and Spearman's rho
  against the observed objectives.
- Recommended mixture: the minimum of the fitted surface over the bounded simplex, found by SLSQP from the
  best of 4,000 sampled mixtures (the fit is a quadratic, so this is its global minimum in practice).
- Uncertainty: the predicted objective's standard deviation over 200 bootstrap refits at that mixture,
  combined with the leave-one-out RMSE (an honest floor on how far one prediction may be off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from syllabus.mix.space import MixSpace, sample_mixtures

ALPHAS = np.logspace(-6, 2, 17)
MIN_ROWS = 5


@dataclass(frozen=True)
class Fit:
    """A fitted surface: ``predict(X)`` (rows of component shares in ``space.names`` order -> objective),
    leave-one-out ``cv_rmse`` and ``cv_spearman`` (NaN when undefined), the leave-one-out predictions, the
    ``recommended`` shares, their ``predicted`` objective and its ``uncertainty`` (one SD)."""

    space: MixSpace
    model: object
    cv_predictions: np.ndarray
    cv_rmse: float
    cv_spearman: float
    recommended: dict[str, float]
    predicted: float
    uncertainty: float

    def predict(self, rows) -> np.ndarray:
        return self.model.predict(np.atleast_2d(np.asarray(rows, dtype=float)))


def _model():
    return make_pipeline(PolynomialFeatures(2), StandardScaler(), RidgeCV(alphas=ALPHAS))


def fit_mixtures(space: MixSpace, weights: list[dict[str, float]], objective: list[float], *, seed: int = 0,
                 bootstrap: int = 200) -> Fit:
    """Fit ``objective`` (lower is better) on ``weights`` (component -> share) and recommend a mixture inside
    ``space``. Rows whose objective is not finite are left out. Raises ``ValueError`` with fewer than
    ``MIN_ROWS`` usable rows."""
    X = np.array([[w[n] for n in space.names] for w in weights], dtype=float)
    y = np.array(objective, dtype=float)
    keep = np.isfinite(y)
    X, y = X[keep], y[keep]
    if len(y) < MIN_ROWS:
        raise ValueError(f"a fit needs at least {MIN_ROWS} proxies with a finite objective (got {len(y)})")
    model = _model().fit(X, y)
    cv = cross_val_predict(_model(), X, y, cv=LeaveOneOut())
    rmse = float(np.sqrt(np.mean((cv - y) ** 2)))
    rho = spearman(cv, y)
    best = _minimum(space, lambda rows: model.predict(rows), seed)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(y), len(y))
        if len(set(idx)) >= MIN_ROWS:
            boot.append(float(_model().fit(X[idx], y[idx]).predict(best[None])[0]))
    spread = float(np.std(boot)) if boot else float("nan")
    return Fit(space, model, cv, rmse, rho, space.as_dict(best), float(model.predict(best[None])[0]),
               float(math.hypot(spread, rmse)))


def spearman(a, b) -> float:
    """Spearman's rank correlation, NaN when either side is constant or shorter than 3."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _minimum(space: MixSpace, predict, seed: int) -> np.ndarray:
    candidates = sample_mixtures(space, 4_000, seed + 1, include_plan=False)
    rows = np.array([[m.weights[n] for n in space.names] for m in candidates])
    start = rows[int(np.argmin(predict(rows)))]
    result = minimize(lambda w: float(predict(w[None])[0]), start, method="SLSQP",
                      bounds=list(zip(space.low, space.high)),
                      constraints=[{"type": "eq", "fun": lambda w: float(w.sum() - 1)}])
    found = space.project(result.x) if result.success else start
    return found if predict(found[None])[0] <= predict(start[None])[0] else start
