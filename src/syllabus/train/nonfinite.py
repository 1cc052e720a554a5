"""NaN/inf losses and gradients: skip the update, count it, and after too many in a row roll back or stop.

Invariant kept: the optimizer never steps on a non-finite loss or gradient norm, so the weights after a
skipped step are those before it. After ``max_nonfinite_skips`` skipped steps in a row the run either
reloads its newest valid checkpoint in-process with the learning rate multiplied by ``rollback_lr_factor``
(``on_nonfinite: rollback``, at most ``max_rollbacks`` times per stage; each one is an ``event: rollback``
record in the metrics), or stops with ``NonFiniteLossError`` (``on_nonfinite: stop``, or when no
checkpoint exists yet or the rollbacks are used up). It never goes on training on garbage.

No host sync per step: the skip happens on the device, as ``GradScaler`` does it. The step's "non-finite"
flag (a 0-dim float tensor) is handed to the fused AdamW as its ``found_inf``, so the kernel leaves the
weights, the moments and the step count untouched when it is 1; under ``GradScaler`` (fp16) the scaler's
own ``found_inf`` skips steps whose gradients overflowed (a non-finite loss makes non-finite gradients).
The counts (skipped steps, the current streak, the longest streak) are kept in a device tensor and read on
the host only by :meth:`NonFiniteGuard.settle`, which the loop calls at its log, evaluation and save steps
and before every checkpoint. So a streak is *acted on* (warned about, rolled back) at the first such step at
or after the one where it reached ``max_nonfinite_skips``; the steps in between changed nothing if the streak
went on, and are discarded with the rollback if it had ended. A checkpoint is never written in a streak: the
periodic save reads the counts first. An optimizer without device-side skipping (not fused) falls back to one
host read per step.
"""

from __future__ import annotations

import logging

import torch

from syllabus.train import checkpoint as ckpt
from syllabus.train.stops import RunHalted

log = logging.getLogger("syllabus")


class NonFiniteLossError(RunHalted):
    """Too many consecutive steps with NaN/inf loss or gradients, and no rollback left."""


class NonFiniteGuard:
    """Skips and counts the updates of non-finite steps (see the module docstring). ``in_a_row``, and the
    skips returned by ``settle``, are as of the last ``settle``."""

    def __init__(self, config):
        self.config = config
        self.in_a_row = 0  # the streak going on at the last settle
        self.longest = 0  # the longest streak seen by the last settle
        self.rollbacks = 0
        self._counts: torch.Tensor | None = None  # int64 [4] on the device: skips, streak, longest, overflowed

    def step(self, optimizer: torch.optim.Optimizer, scaler, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Step ``optimizer`` (through ``scaler`` when given) unless ``loss`` or ``grad_norm`` (0-dim, on the
        device) is non-finite; count the step. No host read unless the optimizer cannot skip on the device.

        With a ``GradScaler`` (fp16) a step whose gradients overflowed (finite loss, inf/NaN norm) is skipped and
        counted too, but does not extend a streak toward ``max_nonfinite_skips``: overflowing now and then is
        how the scaler finds its scale."""
        finite_loss = torch.isfinite(loss)
        skipped = ~(finite_loss & torch.isfinite(grad_norm))
        streak = ~finite_loss if scaler is not None else skipped
        if self._counts is None:
            self._counts = torch.tensor([0, self.in_a_row, self.in_a_row, 0], device=loss.device)
        counts = self._counts
        counts[0] += skipped.long()
        counts[1] = (counts[1] + 1) * streak.long()
        counts[2] = torch.maximum(counts[2], counts[1])
        counts[3] += (skipped & finite_loss).long()  # overflowed (only a scaler lets such a step through)
        if scaler is not None:  # its found_inf skips the step of overflowed (so also of non-finite) gradients
            scaler.step(optimizer)
        elif getattr(optimizer, "_step_supports_amp_scaling", False):  # fused: skipped by the kernel
            optimizer.grad_scale, optimizer.found_inf = None, skipped.float()
            try:
                optimizer.step()
            finally:
                del optimizer.grad_scale, optimizer.found_inf
        elif not bool(skipped):  # no device-side skip: one host read
            optimizer.step()

    def settle(self, step: int, scaler=None) -> int:
        """Read the counts since the last call (one host read; nothing when no step ran since): set
        ``in_a_row`` and ``longest``, warn about skipped steps, and return how many were skipped. ``scaler``
        (fp16): named in the warning about overflowed steps, with the scale it lowered to."""
        if self._counts is None:
            return 0
        skipped, self.in_a_row, self.longest, overflowed = (int(v) for v in self._counts.tolist())
        self._counts = None
        if overflowed:
            scale = f" to {scaler.get_scale():g}" if scaler is not None else ""
            log.warning("step %d: fp16 gradients overflowed in %d step(s) since the last log; update skipped, "
                        "loss scale lowered%s", step, overflowed, scale)
        if skipped > overflowed:
            log.warning("%d step(s) up to step %d with non-finite loss or gradient norm; update skipped (%d in a "
                        "row now)", skipped - overflowed, step, self.in_a_row)
        return skipped

    def reset(self) -> None:
        """Forget the streak and the counts not yet settled (a checkpoint was restored)."""
        self._counts, self.in_a_row, self.longest = None, 0, 0

    @property
    def exhausted(self) -> bool:
        """Whether a streak of ``max_nonfinite_skips`` was seen by the last ``settle``."""
        return self.longest >= self.config.max_nonfinite_skips

    def recover(self, trainer) -> None:
        """Roll ``trainer`` back to its newest valid checkpoint with a lower LR, or raise ``NonFiniteLossError``."""
        cfg = self.config
        what = f"{self.longest} consecutive steps with non-finite loss or gradients up to step {trainer.step}"
        if cfg.on_nonfinite == "stop":
            raise NonFiniteLossError(f"{what} (on_nonfinite: stop); lower the learning rate or check the data")
        if self.rollbacks >= cfg.max_rollbacks:
            raise NonFiniteLossError(f"{what}, after {self.rollbacks} rollback(s) (max_rollbacks); lower the "
                                     f"learning rate or check the data")
        trainer.wait_for_saves()  # a background save in flight is the newest checkpoint once written
        path = ckpt.latest_valid_checkpoint(trainer.checkpoint_dir)
        if path is None:
            raise NonFiniteLossError(f"{what}, and no checkpoint to roll back to yet; lower the learning rate or "
                                     f"check the data")
        failed_step, skips, multiplier = trainer.step, trainer.nonfinite_skips, trainer.lr_multiplier
        trainer.restore(path)
        self.rollbacks += 1
        self.reset()
        trainer.nonfinite_skips = skips  # the count of skipped steps is not rolled back
        trainer.lr_multiplier = multiplier * cfg.rollback_lr_factor
        record = {"step": trainer.step, "event": "rollback", "from_step": failed_step, "checkpoint": str(path),
                  "lr_multiplier": trainer.lr_multiplier, "rollbacks": self.rollbacks, "nonfinite_skips": skips}
        if trainer.stage:
            record["stage"] = trainer.stage
        if trainer.dist.is_main:
            trainer.metrics.log(record)
        log.warning("%s: rolled back to %s (step %d) with the LR multiplied by %g (now x%g); rollback %d of %d",
                    what, path.name, trainer.step, cfg.rollback_lr_factor, trainer.lr_multiplier, self.rollbacks,
                    cfg.max_rollbacks)
