"""The regression from mixture weights to objective, and the mixture it recommends.

Library: scikit-learn. RegMix (arXiv 2407.01492) fits LightGBM on 512 proxies; a search here has tens, where
gradient-boosted trees (LightGBM's leaves need 20 rows each by default) cannot fit a smooth surface. A
quadratic in the weights with ridge penalty chosen by cross-validation (``PolynomialFeatures(2)`` +
``RidgeCV``) is smooth, has the optimum at an interior point when the data says so, and needs only
``(n+1)(n+2)/2`` rows for ``n`` components; scikit-learn also gives the cross-validation and the pipeline,
and SciPy (its dependency) the bounded optimisation and Spearman's rank correlation.

- Cross-validated error: leave-one-out predictions (``cross_val_predict``), their RMSE and Spearman's rho
  against the observed objectives.
- Recommended mixture: RegMix's rule (section 3.3: simulate many mixtures, average the top-ranked ones), made
  cautious: 4,000 mixtures are drawn like the proxies' (the same Dirichlet scheme, inside the bounds), ranked
  by the prediction plus its bootstrap SD (200 refits on resampled proxies), and the best ``TOP`` are averaged.
  A corner no proxy came near has a wide bootstrap spread, so the fit cannot recommend it on extrapolation
  alone; the average of mixtures inside the bounded simplex is inside it (the set is convex).
- Uncertainty: the bootstrap SD of the prediction at the recommended mixture, combined with the leave-one-out
  RMSE (an honest floor on how far one prediction may be off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from syllabus.mix.space import MixSpace, sample_mixtures

ALPHAS = np.logspace(-6, 2, 17)
MIN_ROWS = 5
CANDIDATES = 4_000
TOP = 40  # mixtures averaged into the recommendation (1% of the candidates)


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
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(y), len(y))
        if len(set(idx)) >= MIN_ROWS:
            boot.append(_model().fit(X[idx], y[idx]))
    candidates = sample_mixtures(space, CANDIDATES, seed + 1, include_plan=False)
    rows = np.array([[m.weights[n] for n in space.names] for m in candidates])
    spread = np.std([b.predict(rows) for b in boot], axis=0) if boot else np.zeros(len(rows))
    best = rows[np.argsort(model.predict(rows) + spread)[:TOP]].mean(axis=0)
    best_spread = float(np.std([b.predict(best[None])[0] for b in boot])) if boot else float("nan")
    return Fit(space, model, cv, rmse, rho, space.as_dict(best), float(model.predict(best[None])[0]),
               float(math.hypot(best_spread, rmse)))


def spearman(a, b) -> float:
    """Spearman's rank correlation, NaN when either side is constant or shorter than 3."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
