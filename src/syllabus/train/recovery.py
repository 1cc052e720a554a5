"""What the loop does when a save or a step fails, so that a failure never costs more than the step in flight.

Invariants kept: a checkpoint that cannot be written (e.g. disk full) leaves every earlier one intact (it is
written aside and renamed into place, see ``checkpoint``), and the run stops with one line saying so, unless the
save was optional and ``on_save_error: continue``. A step that raises before its update (e.g. its data became
unreadable) is first checkpointed as of the last completed step, with the RNG and data position of that moment,
so ``--resume auto`` continues exactly once the cause is fixed.
"""

from __future__ import annotations

import logging

import torch

from syllabus.train import checkpoint as ckpt
from syllabus.train.stops import RunHalted

log = logging.getLogger("syllabus")


def save_failed(trainer, err: OSError, required: bool, step: int | None = None) -> None:
    """Stop with ``RunHalted``, or (an optional save under ``on_save_error: continue``) warn and log an event.

    ``step`` is the step of the failed save when it is not the current one (a background save)."""
    step = trainer.step if step is None else step
    previous = ckpt.latest_valid_checkpoint(trainer.checkpoint_dir)
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    message = f"could not write the checkpoint of step {step} in {trainer.checkpoint_dir}: {err}; {kept}"
    if required or trainer.config.on_save_error == "stop":
        raise RunHalted(f"{message}. Free space, then run again with --resume auto") from err
    log.warning("%s; continuing without it (on_save_error: continue)", message)
    if trainer.dist.is_main:
        trainer.metrics.log({"step": step, "event": "save_failed", "error": str(err),
                             **({"stage": trainer.stage} if trainer.stage else {})})


def checkpoint_failed_step(trainer, err: Exception, rng: torch.Tensor, data: dict) -> None:
    """Checkpoint ``trainer`` as of its last completed step (``rng`` and ``data`` as they were then); the caller
    re-raises ``err``. Single process only: with several ranks a lone save would wait for the others forever."""
    if trainer.dist.world_size != 1 or trainer.step == 0:
        return
    trainer.optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    trainer.batches.load_state_dict(data)
    try:
        path = trainer.save()
    except Exception as save_err:  # keep the original error; the older checkpoints are intact
        log.error("step %d failed, and so did saving a checkpoint: %s", trainer.step + 1, save_err)
        return
    log.error("step %d failed (%s: %s); saved %s so the run can continue from step %d", trainer.step + 1,
              type(err).__name__, err, path, trainer.step)
