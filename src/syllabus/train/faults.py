"""Fault-injection hooks for the reliability tests, read from the environment here and nowhere else.

``SYLLABUS_FAULT_NAN_STEPS=5,6,7``
    The loss and every gradient of these optimizer steps (1-based, counted per stage) become NaN. Each listed
    step is poisoned once per process, so a rollback that replays it trains normally (as a transient fault would).
``SYLLABUS_FAULT_INF_GRAD_STEPS=3``
    One gradient of these optimizer steps becomes inf while the loss stays finite: an fp16 overflow, which the
    loss scaler answers by skipping the update and halving its scale. Once per process, like the NaN steps.
``SYLLABUS_FAULT_SAVE_ERROR_STEPS=4,8``
    Writing the checkpoint of these steps fails half-way with ``OSError(ENOSPC)`` (a full disk), every time.
``SYLLABUS_FAULT_SLOW_SAVE_STEPS=4`` with ``SYLLABUS_FAULT_SLOW_SAVE_SECONDS=3``
    Writing the checkpoint of these steps pauses this long half-way (after the weights, before the manifest),
    so a test can act while a (background) write is in progress.
``SYLLABUS_FAULT_CRASH_RANK=r`` with ``SYLLABUS_FAULT_CRASH_STEP=s``
    Rank ``r`` raises ``InjectedFault`` once it has finished ``s`` optimizer steps, to check that the other
    ranks end with an error instead of hanging.
``SYLLABUS_FAULT_EVAL_SHIFT=nats`` with ``SYLLABUS_FAULT_EVAL_SHIFT_RANKS=0,1`` and ``SYLLABUS_FAULT_EVAL_SHIFT_STAGE=name``
    The held-out losses that these ranks measure during that stage are raised by ``nats`` (only at the steps in
    ``SYLLABUS_FAULT_EVAL_SHIFT_STEPS`` when it is set), to check decisions taken from an evaluation: the
    forgetting gate's is the same on every rank when their numbers differ, and a late firing is reported right.

Unset (the normal case), every hook is a no-op. See ``docs/reliability.md``.
"""

from __future__ import annotations

import errno
import os
import time

import torch

NAN_STEPS = "SYLLABUS_FAULT_NAN_STEPS"
INF_GRAD_STEPS = "SYLLABUS_FAULT_INF_GRAD_STEPS"
SAVE_ERROR_STEPS = "SYLLABUS_FAULT_SAVE_ERROR_STEPS"
SLOW_SAVE_STEPS, SLOW_SAVE_SECONDS = "SYLLABUS_FAULT_SLOW_SAVE_STEPS", "SYLLABUS_FAULT_SLOW_SAVE_SECONDS"
CRASH_RANK, CRASH_STEP = "SYLLABUS_FAULT_CRASH_RANK", "SYLLABUS_FAULT_CRASH_STEP"
EVAL_SHIFT, EVAL_SHIFT_RANKS = "SYLLABUS_FAULT_EVAL_SHIFT", "SYLLABUS_FAULT_EVAL_SHIFT_RANKS"
EVAL_SHIFT_STAGE, EVAL_SHIFT_STEPS = "SYLLABUS_FAULT_EVAL_SHIFT_STAGE", "SYLLABUS_FAULT_EVAL_SHIFT_STEPS"
_poisoned: set[tuple[str, int]] = set()


def _steps(variable: str) -> set[int]:
    return {int(s) for s in os.environ.get(variable, "").replace(" ", "").split(",") if s}


def inject_nonfinite(step: int, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """``loss`` as is, or NaN (with NaN gradients) when ``step`` is listed in ``SYLLABUS_FAULT_NAN_STEPS``; with
    ``step`` in ``SYLLABUS_FAULT_INF_GRAD_STEPS`` the first gradient is set to inf and ``loss`` kept."""
    if step in _steps(INF_GRAD_STEPS) and (INF_GRAD_STEPS, step) not in _poisoned:
        _poisoned.add((INF_GRAD_STEPS, step))
        next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
    if step not in _steps(NAN_STEPS) or (NAN_STEPS, step) in _poisoned:
        return loss
    _poisoned.add((NAN_STEPS, step))
    for p in model.parameters():
        if p.grad is not None:
            p.grad.fill_(float("nan"))
    return loss * float("nan")


def check_save(step: int) -> None:
    """Raise ``OSError(ENOSPC)`` when writing the checkpoint of ``step`` is to fail."""
    if step in _steps(SAVE_ERROR_STEPS):
        raise OSError(errno.ENOSPC, f"No space left on device (injected by {SAVE_ERROR_STEPS})")


def slow_save(step: int) -> None:
    """Sleep ``SYLLABUS_FAULT_SLOW_SAVE_SECONDS`` when writing the checkpoint of ``step`` is to be slow."""
    if step in _steps(SLOW_SAVE_STEPS):
        time.sleep(float(os.environ.get(SLOW_SAVE_SECONDS, "3")))


class InjectedFault(RuntimeError):
    """Raised by the ``SYLLABUS_FAULT_CRASH_*`` hook."""


def crash_if_asked(rank: int, step: int) -> None:
    """Raise ``InjectedFault`` on the rank and after the step named by ``SYLLABUS_FAULT_CRASH_*``."""
    want_rank, want_step = os.environ.get(CRASH_RANK), os.environ.get(CRASH_STEP)
    if want_rank is not None and want_step is not None and rank == int(want_rank) and step == int(want_step):
        raise InjectedFault(f"rank {rank}: fault injected after step {step} ({CRASH_RANK}/{CRASH_STEP})")


def shift_eval(rank: int, stage: str | None, step: int, losses: dict[str, float]) -> dict[str, float]:
    """``losses`` (``val_loss…`` in nats) as measured, or raised by ``SYLLABUS_FAULT_EVAL_SHIFT`` on the listed
    ranks during the named stage (at the listed steps, when some are)."""
    shift, steps = os.environ.get(EVAL_SHIFT), _steps(EVAL_SHIFT_STEPS)
    if shift is None or rank not in _steps(EVAL_SHIFT_RANKS) or stage != os.environ.get(EVAL_SHIFT_STAGE) \
            or (steps and step not in steps):
        return losses
    return {k: v + float(shift) for k, v in losses.items()}
