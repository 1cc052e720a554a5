"""The mixtures a stage may take, and how a search samples them.

A stage's mixture has one component per source in its ``data`` plus, when it has ``replay``, one ``replay``
component (the replayed data keeps its own inner split). A :class:`MixSpace` holds the plan's weights (the
centre), a lower and an upper share per component, and why each upper share is what it is: the user's bound,
or the stage's epoch limit (a source of ``E`` tokens per epoch in a stage of ``T`` tokens can hold at most
``max_epochs * E / T`` of it without repeating more than ``max_epochs`` times).

Sampling follows RegMix (Liu et al. 2024, arXiv 2407.01492, section 3): Dirichlet draws centred on the
plan's weights, ``alpha = c * centre``, over a range of concentrations ``c`` (small ``c``: far from the plan,
often near a corner; large ``c``: close to it). Draws outside the bounds are drawn again; one that never fits
is projected onto the bounded simplex (the nearest point in Euclidean distance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from syllabus.config.errors import ConfigError

REPLAY = "replay"
# Concentrations cycled through by the Dirichlet draws (RegMix draws over a range of scales; this one spans
# nearly-corner mixtures at 1 to near-plan ones at 50).
CONCENTRATIONS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Mixture:
    """One candidate: ``name`` (its proxy folder), ``kind`` (``plan``, ``uniform``, ``dirichlet``, ``holdout``),
    ``weights`` (component -> share, summing to 1) and ``concentration`` (the Dirichlet's ``c``, or None)."""

    name: str
    kind: str
    weights: dict[str, float]
    concentration: float | None = None


@dataclass(frozen=True)
class MixSpace:
    """Components in order, the plan's shares (``centre``), bounds, and each source's epochs at full budget.

    ``epochs_per_share[name]``: epochs of that source the full stage reads per unit of share (stage tokens /
    tokens per epoch); absent for ``replay``. ``limit[name]`` says why the upper bound is what it is."""

    names: tuple[str, ...]
    centre: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    epochs_per_share: dict[str, float] = field(default_factory=dict)
    limit: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, centre: dict[str, float], bounds: dict[str, tuple[float, float]] | None = None,
              epochs_per_share: dict[str, float] | None = None, max_epochs: float | None = None) -> "MixSpace":
        """The space of a stage whose plan gives ``centre`` (component -> share). ``bounds``: component ->
        (min, max) share; ``max_epochs`` with ``epochs_per_share`` caps a source's share at
        ``max_epochs / epochs_per_share``. Raises ``ConfigError`` naming the bound when a bound is not a
        component or out of [0, 1], or when no mixture fits (mins summing above 1, maxes below)."""
        names = tuple(centre)
        bounds, epochs_per_share = dict(bounds or {}), dict(epochs_per_share or {})
        bad = [f"--bound {k}: not a component of the stage (components: {', '.join(names)})"
               for k in bounds if k not in names]
        bad += [f"--bound {k}: needs 0 <= min <= max <= 1 (got {lo:g}:{hi:g})"
                for k, (lo, hi) in bounds.items() if not 0 <= lo <= hi <= 1]
        if bad:
            raise ConfigError(bad)
        low, high, limit = [], [], {}
        for name in names:
            lo, hi = bounds.get(name, (0.0, 1.0))
            limit[name] = "bound" if name in bounds else "none"
            per_share = epochs_per_share.get(name)
            if max_epochs is not None and per_share and max_epochs / per_share < hi:
                hi, limit[name] = max_epochs / per_share, f"{max_epochs:g} epochs"
            low.append(lo)
            high.append(max(hi, lo))
        if sum(low) > 1 + TOLERANCE or sum(high) < 1 - TOLERANCE:
            raise ConfigError(f"--bound/--max-epochs: no mixture fits (mins sum to {sum(low):.3g}, maxes to "
                              f"{sum(high):.3g}; " + ", ".join(f"{n} <= {h:.3g} ({limit[n]})"
                                                               for n, h in zip(names, high)) + ")")
        total = sum(centre.values())
        return cls(names, tuple(centre[n] / total for n in names), tuple(low), tuple(high), epochs_per_share, limit)

    def contains(self, weights: dict[str, float]) -> bool:
        """True when ``weights`` sums to 1 and every share lies within its bounds."""
        w = np.array([weights[n] for n in self.names])
        return abs(w.sum() - 1) < 1e-6 and bool(np.all(w >= np.array(self.low) - 1e-6)) and \
            bool(np.all(w <= np.array(self.high) + 1e-6))

    def epochs(self, weights: dict[str, float]) -> dict[str, float]:
        """Epochs of each source the full stage would read with ``weights`` (replay not counted)."""
        return {n: weights[n] * per for n, per in self.epochs_per_share.items() if n in weights}

    def outside(self, weights: dict[str, float]) -> list[str]:
        """Why ``weights`` is outside the space, one phrase per component (empty when inside)."""
        found = []
        for n, lo, hi in zip(self.names, self.low, self.high):
            share = weights[n]
            if share > hi + 1e-6:
                why = (f"would repeat {share * self.epochs_per_share[n]:.3g} epochs" if self.limit[n].endswith("epochs")
                       else "above its bound")
                found.append(f"{n} = {share:.3g} > {hi:.3g} ({why})")
            elif share < lo - 1e-6:
                found.append(f"{n} = {share:.3g} < {lo:.3g} (below its bound)")
        return found

    def project(self, vector) -> np.ndarray:
        """The point of the bounded simplex nearest ``vector`` (length ``len(names)``): ``clip(v - tau, low,
        high)`` with ``tau`` found by bisection so the shares sum to 1."""
        v, low, high = np.asarray(vector, dtype=float), np.array(self.low), np.array(self.high)
        a, b = float(np.min(v - high)) - 1.0, float(np.max(v - low)) + 1.0
        for _ in range(200):
            tau = (a + b) / 2
            if np.clip(v - tau, low, high).sum() > 1:
                a = tau
            else:
                b = tau
        w = np.clip(v - (a + b) / 2, low, high)
        return w / w.sum()

    def as_dict(self, vector) -> dict[str, float]:
        return {n: float(x) for n, x in zip(self.names, vector)}


def sample_mixtures(space: MixSpace, k: int, seed: int, *, concentrations=CONCENTRATIONS,
                    include_plan: bool = True, kind: str = "dirichlet", prefix: str = "p") -> list[Mixture]:
    """``k`` mixtures: the plan's own (``include_plan``, kept as written even when outside the bounds; the
    search reports why), the uniform one (projected into the bounds), then Dirichlet draws with ``alpha = c *
    centre`` for ``c`` cycling through ``concentrations``, redrawn up to 100 times to fit the bounds, else
    projected. Deterministic in ``seed``. Names are ``{prefix}NN-{kind}``."""
    rng = np.random.default_rng(seed)
    n = len(space.names)
    chosen: list[tuple[str, np.ndarray, float | None]] = []
    if include_plan:
        chosen.append(("plan", np.array(space.centre), None))
        chosen.append(("uniform", space.project(np.full(n, 1.0 / n)), None))
    base = np.maximum(space.project(space.centre), 1e-3)
    base = base / base.sum()
    draw = 0
    while len(chosen) < k:
        c = concentrations[draw % len(concentrations)]
        draw += 1
        for _ in range(100):
            w = rng.dirichlet(c * base)
            if space.contains(space.as_dict(w)):
                break
        else:
            w = space.project(w)
        chosen.append((kind, w, c))
    return [Mixture(f"{prefix}{i:02d}-{label}", label, space.as_dict(w), c)
            for i, (label, w, c) in enumerate(chosen[:k])]
