"""NaN/inf losses and gradients: skip the update, count it, and after too many in a row roll back or stop.

Invariant kept: the optimizer never steps on a non-finite loss or gradient norm, so the weights after a
skipped step are those before it. After ``max_nonfinite_skips`` skipped steps in a row the run either
reloads its newest valid checkpoint in-process with the learning rate multiplied by ``rollback_lr_factor``
(``on_nonfinite: rollback``, at most ``max_rollbacks`` times per stage; each one is an ``event: rollback``
record in the metrics), or stops with ``NonFiniteLossError`` (``on_nonfinite: stop``, or when no
checkpoint exists yet or the rollbacks are used up). It never goes on training on garbage.
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
    def __init__(self, config):
        self.config = config
        self.in_a_row = 0
        self.rollbacks = 0

    def update_allowed(self, loss: torch.Tensor, grad_norm: torch.Tensor, scaled: bool) -> bool:
        """Whether this step's update may be applied: loss and gradient norm finite.

        With a GradScaler (``scaled``, fp16) a step whose gradients overflowed (finite loss, inf/NaN norm) is
        skipped as well, and the scaler lowers its scale at ``update()``; such a step does not count toward
        ``max_nonfinite_skips``: overflowing now and then is how the scaler finds its scale."""
        finite_loss, finite_grad = torch.stack([torch.isfinite(loss), torch.isfinite(grad_norm)]).tolist()  # one sync
        bad = not finite_loss if scaled else not (finite_loss and finite_grad)
        self.in_a_row = self.in_a_row + 1 if bad else 0
        return finite_loss and finite_grad

    @property
    def exhausted(self) -> bool:
        return self.in_a_row >= self.config.max_nonfinite_skips

    def recover(self, trainer) -> None:
        """Roll ``trainer`` back to its newest valid checkpoint with a lower LR, or raise ``NonFiniteLossError``."""
        cfg = self.config
        what = f"{self.in_a_row} consecutive steps with non-finite loss or gradients up to step {trainer.step}"
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
        self.in_a_row = 0
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
