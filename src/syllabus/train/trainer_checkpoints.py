"""A trainer's checkpoints: what one holds, writing it (now, or from a host copy in the background), and
restoring the trainer from one.

``TrainerCheckpoints`` belongs to one ``Trainer``: it reads the trainer's state to save it and sets it on
restore. Where the files go and how they are laid out is ``checkpoint`` (one folder, written by the main
rank) and ``sharded_checkpoint`` (FSDP2: every rank writes its shards); a background write is
``background_save``. Invariants kept: one checkpoint per step (saving a step again returns the folder it
already has); at most one write in flight, and a required save waits for it first; a save that fails leaves
every earlier checkpoint intact and is handled by ``recovery.save_failed`` (stop, or warn and go on).
"""

from __future__ import annotations

import logging
import math
import weakref
from pathlib import Path

import torch

from syllabus.model.kernels import KernelChoice, kernels_on_resume
from syllabus.train import checkpoint as ckpt
from syllabus.train import recovery, sharded_checkpoint
from syllabus.train.background_save import BackgroundSave, host_copy
from syllabus.train.precision import PrecisionChoice, precision_on_resume

log = logging.getLogger("syllabus")


class TrainerCheckpoints:
    """Save and restore ``trainer`` (the ``Trainer`` that owns this object); every method is called on every
    rank (collectives inside under FSDP2).

    A checkpoint holds the weights, the optimizer's moments, ``trainer_state.pt`` (step, tokens seen, scaler,
    non-finite counts, best validation loss, LR multiplier, rollbacks, last evaluation, CPU/CUDA RNG, data
    position, ``extra_state()``, precision, kernels), and ``model_config.json``, ``run_config.json`` (the
    config, the stage, the resolved precision and the kernels) and ``tokenizer.json``."""

    def __init__(self, trainer):
        self._trainer = weakref.ref(trainer)  # no cycle: a finished stage's trainer is freed by refcounting
        self.saved: tuple[int, Path | None] | None = None  # (step, folder) of the newest save
        self.background = BackgroundSave()  # the periodic save in flight under async_save

    @property
    def trainer(self):
        return self._trainer()

    def save(self, required: bool = True) -> Path | None:
        """Write a checkpoint of the trainer's current step and prune old ones; once per step. Returns the
        folder (the one it will have, for a background write) on the main rank, None on the others.

        A required save first waits for the background one in flight and is written synchronously; an
        optional one (periodic, best) is written in the background under ``async_save``. A failed save (e.g.
        ``OSError``: disk full) raises ``RunHalted``, unless it is optional and ``on_save_error`` is
        ``continue``: then it is logged as an ``event: save_failed`` record and None is returned."""
        trainer = self.trainer
        if required:
            self.wait()
        if self.saved is not None and self.saved[0] == trainer.step:
            return self.saved[1]
        try:
            path = self._write(background=trainer.config.async_save and not required)
        except OSError as err:
            recovery.save_failed(trainer, err, required)  # raises unless this save may be skipped
            return None
        self.saved = (trainer.step, path)
        return path

    def wait(self) -> None:
        """Block until the background save in flight (if any) is renamed into place; a failure of it is handled
        as that of an optional save (``on_save_error``), and its step then counts as unsaved."""
        try:
            self.background.wait()
        except OSError as err:
            if self.saved is not None and self.saved[0] == self.background.step:
                self.saved = None  # that step has no checkpoint after all
            recovery.save_failed(self.trainer, err, required=False, step=self.background.step)

    def finish(self) -> None:
        """On the way out of the loop, also after an error: let the save in flight finish, so a stop never
        loses it; its failure is logged, not raised (the error that ended the loop, if any, is the one kept)."""
        try:
            self.background.wait()
        except Exception as err:
            log.error("the background checkpoint save of step %s failed: %s", self.background.step, err)

    def alias(self, path: Path, name: str) -> None:
        """Hard-link the checkpoint ``path`` as ``name`` (``best``, ``final``) beside it, once it is renamed into
        place: now, or when the background write in flight ends (not at all if that write fails)."""
        self.background.then(lambda written: ckpt.alias_checkpoint(written, name), path)

    def restore(self, path: str | Path) -> dict:
        """Set the trainer to the checkpoint ``path``: weights, optimizer, counters, RNG, data position, and
        precision (``auto`` keeps the checkpoint's, an explicit value is obeyed), and the kernels (the
        checkpoint's per shape class, ``kernels_on_resume``; an older checkpoint without them: calibrated as a
        fresh run is). Either format restores under
        any strategy: a sharded one is resharded by DCP, a single folder is scattered under FSDP2.

        Returns what ``extra_state`` had saved, after handing it to ``load_extra_state``. Raises
        ``CheckpointError`` for a checkpoint that is refused (torn, or holding code)."""
        trainer, path = self.trainer, Path(path)
        state = ckpt.load_trainer_state(path)
        if sharded_checkpoint.is_sharded(path):  # written by FSDP2: DCP reshards to this world and strategy
            sharded_checkpoint.load_sharded_into(path, trainer.raw_model, trainer.optimizer,
                                                 collective=trainer.dist.sharded)
        elif trainer.dist.sharded:  # a single-folder checkpoint continued under FSDP2
            sharded_checkpoint.load_full_into_sharded(trainer.raw_model, trainer.optimizer,
                                                      ckpt.load_model_state(path), state["optimizer"])
        else:
            ckpt.load_weights(trainer.raw_model, ckpt.load_model_state(path))
            trainer.optimizer.load_state_dict(state["optimizer"])
        if state.get("precision"):  # auto keeps the checkpoint's precision; an explicit value is obeyed
            trainer.use_precision(precision_on_resume(trainer.precision, PrecisionChoice.from_dict(state["precision"])))
        if state.get("kernels") and hasattr(trainer.raw_model, "use_kernels"):  # older checkpoints: calibrated
            trainer.kernels = kernels_on_resume(trainer.kernels, KernelChoice.from_dict(state["kernels"]))
            trainer.raw_model.use_kernels(trainer.kernels)
        if trainer.scaler is not None and state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        trainer.step, trainer.tokens_seen = state["step"], state["tokens_seen"]
        trainer.nonfinite_skips = state.get("nonfinite_skips", 0)
        trainer.best_val_loss = state.get("best_val_loss", math.inf)
        trainer.lr_multiplier = state.get("lr_multiplier", 1.0)
        trainer.nonfinite.rollbacks = max(trainer.nonfinite.rollbacks, state.get("rollbacks", 0))
        trainer.nonfinite.reset()  # counts not yet read belong to the steps given up
        trainer.last_val = state.get("last_val", {})  # a stage resumed at its end still knows its final evaluation
        self.saved = None
        torch.set_rng_state(state["rng_cpu"])
        if torch.cuda.is_available() and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(cuda_rng_to_restore(state["rng_cuda"], torch.cuda.current_device()))
        trainer.batches.load_state_dict(state["data"])
        log.info("resumed from %s at step %d (%d tokens seen)", path, trainer.step, trainer.tokens_seen)
        extra = state.get("extra", {})
        if extra and trainer.load_extra_state is not None:
            trainer.load_extra_state(extra)
        return extra

    def _trainer_state(self) -> dict:
        """``trainer_state.pt`` without the optimizer (its format depends on the strategy)."""
        trainer = self.trainer
        return {
            "step": trainer.step, "tokens_seen": trainer.tokens_seen,
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
            "nonfinite_skips": trainer.nonfinite_skips, "best_val_loss": trainer.best_val_loss,
            "lr_multiplier": trainer.lr_multiplier, "rollbacks": trainer.nonfinite.rollbacks,
            "last_val": trainer.last_val,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,  # this device's only
            "data": trainer.batches.state_dict(), "extra": trainer.extra_state() if trainer.extra_state else {},
            "precision": trainer.precision.to_dict(), "kernels": trainer.kernels.to_dict(),
        }

    def _write(self, background: bool = False) -> Path | None:
        """Write this step's checkpoint; with ``background`` the state is copied to host memory here and written
        by ``self.background`` (returns the folder it will have). Ends at a barrier (except the sharded
        background write, whose ranks meet in ``torch.distributed.checkpoint.async_save``)."""
        trainer = self.trainer
        if background:
            self.background.wait()  # at most one in flight; an error of the previous one surfaces here
        state = self._trainer_state()
        path = None
        json_files = {"model_config.json": trainer.raw_model.config.model_dump(),
                      "run_config.json": {"stage": trainer.stage, **trainer.config.model_dump(),
                                          "precision": trainer.precision.to_dict(),
                                          "kernels": trainer.kernels.to_dict()}}
        text_files = {"tokenizer.json": trainer.tokenizer.to_str()}
        root, step, keep, is_main = trainer.checkpoint_dir, trainer.step, trainer.config.keep_last_n_checkpoints, \
            trainer.dist.is_main
        if trainer.dist.sharded and background:
            path = sharded_checkpoint.save_sharded_checkpoint_async(
                root, step, trainer.raw_model, trainer.optimizer, host_copy(state), is_main=is_main,
                json_files=json_files, text_files=text_files, background=self.background, keep=keep)
            return path if is_main else None
        if trainer.dist.sharded:
            written = sharded_checkpoint.save_sharded_checkpoint(
                root, step, trainer.raw_model, trainer.optimizer, state, is_main=is_main,
                json_files=json_files, text_files=text_files)
            if is_main:
                path = written
                ckpt.prune_checkpoints(root, keep)
        elif is_main and background:
            state["optimizer"] = trainer.optimizer.state_dict()
            state = host_copy(state)
            weights = host_copy(ckpt.model_state_for_saving(trainer.raw_model))

            def write() -> Path:
                written = ckpt.save_checkpoint(root, step, weights, state, json_files=json_files,
                                               text_files=text_files)
                ckpt.prune_checkpoints(root, keep)
                return written
            self.background.start(step, write)
            path = root / f"step_{step}"
        elif is_main:
            state["optimizer"] = trainer.optimizer.state_dict()
            path = ckpt.save_checkpoint(root, step, ckpt.model_state_for_saving(trainer.raw_model), state,
                                        json_files=json_files, text_files=text_files)
            ckpt.prune_checkpoints(root, keep)
        trainer.dist.barrier()
        return path


def cuda_rng_to_restore(saved, device_index: int) -> torch.Tensor:
    """The CUDA generator state to set on the current device from a checkpoint's ``rng_cuda``.

    Checkpoints hold the saving device's state (a uint8 tensor). Older ones held a list with one state per
    GPU visible to the saving process (``get_rng_state_all``): the current device's entry is taken, as
    ``set_rng_state_all`` gave it, or the first when this process sees more GPUs than the saver did (a run
    from a 1-GPU box continued on 8, ...). Restoring only the current device means a resume works with any
    number of visible GPUs (``set_rng_state_all`` raised ``IndexError`` with fewer)."""
    if isinstance(saved, torch.Tensor):
        return saved
    states = list(saved)
    if not states:
        raise ValueError("checkpoint field rng_cuda: an empty list of CUDA RNG states")
    return states[device_index] if device_index < len(states) else states[0]

