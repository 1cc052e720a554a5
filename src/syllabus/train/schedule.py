"""The step schedule as data: learning rate by step, and curriculum phases turned into per-step values.

Invariant kept here: a phase's values hold from its ``at`` step until the next phase's ``at``; the learning
rate is a pure function of the step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """From optimizer step ``at`` on, train with these shapes and this LR multiplier."""

    at: int
    seq_len: int
    micro_batch_size: int
    grad_accum_steps: int
    lr_scale: float = 1.0

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.micro_batch_size * self.grad_accum_steps


def phase_at(phases: list[Phase], step: int) -> Phase:
    """The phase in force at ``step`` (phases sorted by ``at``, the first at 0)."""
    current = phases[0]
    for phase in phases[1:]:
        if phase.at > step:
            break
        current = phase
    return current


def lr_at(step: int, *, peak: float, minimum: float, warmup: int, total: int, schedule: str,
          decay_fraction: float = 0.2) -> float:
    """Linear warmup over ``warmup`` steps, then cosine / constant / warmup-stable-decay to ``minimum``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    if schedule == "wsd":
        decay_start = max(warmup, total - int(round(decay_fraction * total)))
        if step < decay_start:
            return peak
        progress = (step - decay_start) / max(1, total - decay_start)
        return peak + (minimum - peak) * min(1.0, progress)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + 0.5 * (peak - minimum) * (1 + math.cos(math.pi * progress))
