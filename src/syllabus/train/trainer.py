"""One stage's training loop: accumulate, clip, step, log, evaluate, checkpoint, stop on request.

The loop knows nothing of other stages. What changes with the step (learning rate, sequence length,
batch shape) comes from ``schedule``; what is saved, how, and how it is restored comes from
``trainer_checkpoints``. Resume is exact: weights, optimizer moments, counters, RNG and the data position are
all restored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from syllabus.config.pretrain import PreTrainingConfig
from syllabus.data.prefetch import Prefetch
from syllabus.hf.sharded import is_pending
from syllabus.train import faults, peaks, recovery
from syllabus.train.distributed import DistContext
from syllabus.model.kernels import KernelChoice
from syllabus.train.calibration import kernel_choice_on_all_ranks
from syllabus.train.compile_choice import auto_compile_for
from syllabus.train.host_memory import keep_freed_memory
from syllabus.train.metrics import MetricsLog, NullLog, Progress
from syllabus.train.nonfinite import NonFiniteGuard, NonFiniteLossError  # noqa: F401 (re-exported)
from syllabus.train.peaks import DTYPES
from syllabus.train.precision import PrecisionChoice, log_choice_once, resolve_on_all_ranks
from syllabus.train.schedule import Phase, lr_at, phase_at
from syllabus.train.sharded_init import is_deferred
from syllabus.train.stops import StopRequest
from syllabus.train.spec_peaks import device_spec_peaks
from syllabus.train.throughput import PeakEstimate, describe_mfu
from syllabus.train.trainer_checkpoints import TrainerCheckpoints
from syllabus.train.optimizer import build_optimizer
from syllabus.train.validation import held_out_losses

log = logging.getLogger("syllabus")


@dataclass
class TrainResult:
    step: int
    tokens_seen: int
    final_checkpoint: Path | None
    stopped_by: str | None = None  # signal name, "callback: …", or None when the budget was reached
    last_val: dict = field(default_factory=dict)


class Trainer:
    """Trains ``model`` on ``batches`` for ``config.max_steps`` optimizer steps.

    ``eval_batches`` maps a domain name to a zero-argument callable returning an iterable of batches of
    its held-out split. ``callbacks`` are called as ``cb(trainer, record)`` after each evaluation and
    may set ``trainer.lr_multiplier`` or call ``trainer.request_stop(reason)``; ``step_hooks`` are called as
    ``hook(trainer)`` after every optimizer step (e.g. the plan's in-stage benchmark tasks). ``extra_state``
    is saved in every checkpoint and handed back to ``load_extra_state`` whenever one is restored (resume or
    rollback). Saving and restoring are ``self.checkpoints`` (``trainer_checkpoints.TrainerCheckpoints``).
    """

    def __init__(self, config: PreTrainingConfig, model: torch.nn.Module, tokenizer, batches, *,
                 out_dir: str | Path, checkpoint_dir: str | Path | None = None,
                 eval_batches: dict[str, Callable] | None = None, phases: list[Phase] | None = None,
                 stage: str | None = None, dist: DistContext | None = None, metrics: MetricsLog | None = None,
                 callbacks: list[Callable] = (), extra_state: Callable[[], dict] | None = None,
                 load_extra_state: Callable[[dict], None] | None = None, stop: StopRequest | None = None,
                 step_hooks: list[Callable] = ()):
        self.config = config
        self.step_hooks = list(step_hooks)
        self.dist = dist or DistContext.single(config.device)
        if self.dist.device.type == "cpu":
            keep_freed_memory()
        # a meta model (a checkpoint read in slices, or a deferred initialisation) is filled once sharded
        self.raw_model = model if is_pending(model) or is_deferred(model) else model.to(self.dist.device)
        # mixed_precision resolved once (auto: by the hardware), the same on every rank; kept on resume
        self.precision = resolve_on_all_ranks(config.mixed_precision, self.dist.device, sharded=self.dist.sharded)
        self.model = self.dist.wrap(self.raw_model,
                                    config.model_copy(update={"mixed_precision": self.precision.chosen}))
        self.tokenizer = tokenizer
        # read ahead on a thread as the schedule says; state_dict() is that of the batches handed out
        self.batches = None if batches is None else Prefetch(
            batches, _weak(self._step_shapes), pin_memory=config.pin_memory and self.dist.device.type == "cuda")
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = Path(checkpoint_dir or self.out_dir / "checkpoints")
        self.eval_batches = eval_batches or {}
        self.phases = phases or [Phase(0, config.max_seq_length, config.micro_batch_size,
                                       config.gradient_accumulation_steps)]
        self.stage = stage
        self.callbacks = list(callbacks)
        self.extra_state, self.load_extra_state = extra_state, load_extra_state
        if metrics is None:
            metrics = MetricsLog(self.out_dir, use_tensorboard=config.use_tensorboard, use_wandb=config.use_wandb,
                                 wandb_project=config.wandb_project, wandb_mode=config.wandb_mode,
                                 config=config.model_dump()) if self.dist.is_main else NullLog()
        self.metrics = metrics
        self.optimizer = build_optimizer(self.raw_model, config, self.dist.device)
        self.use_precision(self.precision)
        self.step = 0
        self.tokens_seen = 0
        self.nonfinite_skips = 0  # total
        self.nonfinite = NonFiniteGuard(config)
        self.best_val_loss = math.inf
        self.lr_multiplier = 1.0
        self.stop = stop or StopRequest()
        self._stop_reason: str | None = None
        self.last_val: dict = {}  # the newest evaluation record
        self.checkpoints = TrainerCheckpoints(self)  # save, restore, the background save in flight
        self._eval_sets: dict[str, list] = {}
        # compile: auto's watcher (train/compile_choice.py), None if not auto
        self.auto_compile = auto_compile_for(config, self.dist, self.raw_model, self.precision.chosen, self.phases)
        if config.compile is True and self.dist.is_main:
            log.info("compile: true: each block's forward is compiled for training steps (warm-up on the first)")
            self._log_event({"event": "compile", "compiled": True, "setting": "true"})

    # --- checkpoints (trainer_checkpoints) ------------------------------------------------------
    def restore(self, path: str | Path) -> dict:
        """Continue from a checkpoint folder: weights, optimizer, counters, RNG and data position.

        Returns what ``extra_state`` had saved (e.g. the plan's forgetting-gate state)."""
        return self.checkpoints.restore(path)

    def save(self, required: bool = True) -> Path | None:
        """Write a checkpoint of the current step and prune old ones; once per step. Called on every rank:
        the main rank writes the single-folder format, or all ranks write their shards under FSDP2.

        A save that fails (e.g. disk full) leaves the previous checkpoints intact; it stops the run with
        ``RunHalted``, unless it is not ``required`` (periodic, best) and ``on_save_error`` is ``continue``
        (see ``recovery``)."""
        self._settle()
        return self.checkpoints.save(required)

    def wait_for_saves(self) -> None:
        """Block until the background save in flight (if any) is renamed into place; a failure of it is handled
        as that of an optional save (``on_save_error``)."""
        self.checkpoints.wait()

    def use_precision(self, choice: PrecisionChoice) -> None:
        """Compute in ``choice.chosen`` from now on: the autocast dtype, a fresh ``GradScaler`` for fp16 (None
        otherwise), and the kernels measured fastest for it on this machine at the phases' shapes
        (``self.kernels``, ``train/calibration.py``; cached per machine)."""
        self.precision = choice
        self.amp_dtype = DTYPES[choice.chosen]
        self.scaler = torch.amp.GradScaler(self.dist.device.type) if choice.chosen == "fp16" else None
        if hasattr(self.raw_model, "use_kernels"):
            shapes = [(p.micro_batch_size, p.seq_len) for p in self.phases]
            self.kernels = kernel_choice_on_all_ranks(self.raw_model.config, shapes, choice.chosen, self.dist.device)
            self.raw_model.use_kernels(self.kernels)
        else:  # a model of another kind computes as it does
            self.kernels = KernelChoice(source="not a syllabus Transformer: its own kernels")

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    def _settle(self) -> None:
        """Bring the non-finite counts up to date (one host read of device values; see ``nonfinite``)."""
        self.nonfinite_skips += self.nonfinite.settle(self.step, self.scaler)

    def _step_shapes(self, step: int) -> list[tuple[int, int]] | None:
        """``[(micro_batch_size, seq_len)]`` of each micro-batch of ``step``; None past the last step (what
        the prefetch thread reads ahead)."""
        if step >= self.config.max_steps:
            return None
        phase = phase_at(self.phases, step)
        return [(phase.micro_batch_size, phase.seq_len)] * phase.grad_accum_steps

    # --- the loop -----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg = self.config
        owns_handlers = not self.stop.installed
        self.stop.install()
        progress = Progress(cfg.max_steps, self.step, self.stage or "train") if self.dist.is_main else None
        peak = self._peak_estimate() if self.dist.is_main else None
        self._log_precision()
        window = _Window()
        last_path = None
        try:
            if self.step == 0 and self.eval_batches:
                self.evaluate_and_notify()  # the starting point every later figure is compared with
            while self.step < cfg.max_steps and not self._should_stop():
                phase = phase_at(self.phases, self.step)
                started = time.perf_counter()
                loss, grad_norm, lr = self._step_or_save(phase, window)
                self.step += 1
                if self.auto_compile is not None:
                    self._log_event(self.auto_compile.observe(self.step, cfg.max_steps,
                                                              time.perf_counter() - started))
                self.tokens_seen += phase.tokens_per_step * self.dist.world_size
                window.tokens += phase.tokens_per_step * self.dist.world_size
                logs = self.step % cfg.log_interval == 0 or self.step == cfg.max_steps
                evaluates = bool(self.eval_batches) and (self.step % cfg.eval_interval == 0
                                                         or self.step == cfg.max_steps)
                saves = self.step % cfg.save_interval == 0 and self.step < cfg.max_steps
                if logs or evaluates or saves:
                    self._settle()  # the loop's only host read of device values
                if logs:
                    self._log_step(loss, grad_norm, lr, phase, window, peak, progress)
                    window = _Window()
                if self.nonfinite.exhausted:
                    self.nonfinite.recover(self)  # back to the newest checkpoint with a lower LR, or raise
                    window = _Window()
                    continue
                if evaluates:
                    self.evaluate_and_notify()
                for hook in self.step_hooks:
                    hook(self)
                if saves and not self.nonfinite.in_a_row:
                    last_path = self.save(required=False) or last_path  # never a checkpoint in a NaN streak
            if self.step >= cfg.max_steps or self.stop or self._stop_reason:
                last_path = self.save()
            self.wait_for_saves()
            if self.step >= cfg.max_steps and last_path is not None:
                self.checkpoints.alias(last_path, "final")
            self._log_data_report()
        finally:
            self.checkpoints.finish()
            self._stop_reading_ahead()
            if owns_handlers:
                self.stop.uninstall()
            if progress:
                progress.close()
        stopped_by = self.stop.signal_name or self._stop_reason
        return TrainResult(self.step, self.tokens_seen, last_path, stopped_by, self.last_val)

    def _stop_reading_ahead(self) -> None:
        """Stop the prefetch thread (it holds the batches and DataLoader workers), back at the position handed out."""
        if self.batches is not None:
            try:
                self.batches.pause()
            except Exception as err:  # on the way out after an error: keep that error
                log.error("could not put the batches back after reading ahead: %s", err)

    def _should_stop(self) -> bool:
        """Whether to leave the loop now; the same answer on every rank (one all-reduce per step).

        Only the agreed answer counts: a signal arriving after the all-reduce is acted on at the next step."""
        local = bool(self.stop) or self._stop_reason is not None
        agreed = self.dist.should_stop(local, self.step)
        if agreed and not local:
            self._stop_reason = "stop requested on another rank"
        return agreed

    def _step_or_save(self, phase: Phase, window: "_Window") -> tuple[torch.Tensor, torch.Tensor, float]:
        """``_step``; if it fails before the update (e.g. its data became unreadable), the last completed step
        is checkpointed first, so the run can be continued once the cause is fixed."""
        rng, data = torch.get_rng_state(), self.batches.state_dict()
        try:
            return self._step(phase, window)
        except Exception as err:
            recovery.checkpoint_failed_step(self, err, rng, data)
            raise

    def _step(self, phase: Phase, window: "_Window") -> tuple[torch.Tensor, torch.Tensor, float]:
        cfg = self.config
        lr = lr_at(self.step, peak=cfg.learning_rate, minimum=cfg.min_learning_rate, warmup=cfg.warmup_steps,
                   total=cfg.max_steps, schedule=cfg.lr_schedule, decay_fraction=cfg.decay_fraction)
        lr *= phase.lr_scale * self.lr_multiplier
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss_sum = faults.inject_nonfinite(self.step + 1, self.raw_model, self.accumulate_gradients(phase, window))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        grad_norm = self.dist.clip_grad_norm(self.model, max_norm)
        loss = loss_sum  # already the mean over the step's tokens on every rank
        self.nonfinite.step(self.optimizer, self.scaler, loss, grad_norm)  # skipped on the device if non-finite
        if self.scaler is not None:
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        window.step_seconds += time.perf_counter() - t0
        return loss, grad_norm, lr

    def accumulate_gradients(self, phase: Phase, window: "_Window | None" = None) -> torch.Tensor:
        """Forward and backward over ``phase.grad_accum_steps`` micro-batches; returns the step's loss.

        Invariant: the step's loss (and its gradient) is the mean over every real target token (label != -100)
        of all its micro-batches and all ranks, whatever the split: micro-batch ``i`` with ``n_i`` of the step's
        ``N`` tokens (counted before any forward, all-reduced) weighs its mean loss by ``n_i * world_size / N``
        (DDP then averages over ranks). Packed rows all hold the same count, so this is the plain mean of
        micro-batch means; padded documents of different lengths are weighed by their tokens. DDP
        all-reduces only on the last micro-batch.
        """
        self.model.train()
        t_data = time.perf_counter()
        batches = self.batches.next_step(self.step, [(phase.micro_batch_size, phase.seq_len)]
                                         * phase.grad_accum_steps)  # read ahead (and pinned) on a thread
        batches = [{k: v.to(self.dist.device, non_blocking=True) for k, v in b.items()} for b in batches]
        counts = [(b["labels"] != -100).sum().float() for b in batches]
        world = self.dist.world_size
        total = (self.dist.mean(torch.stack(counts).sum()) * world).clamp(min=1)
        if window is not None:
            window.data_seconds += time.perf_counter() - t_data
        loss_sum = torch.zeros((), device=self.dist.device)
        for micro, (batch, count) in enumerate(zip(batches, counts)):
            last_micro = micro == phase.grad_accum_steps - 1
            sync = contextlib.nullcontext() if last_micro else self.dist.no_sync(self.model)
            with sync:  # around the backward too: FSDP2 decides whether to reduce in its backward hooks
                with self._autocast():
                    loss = self.model(batch["input_ids"], batch["labels"], doc_ids=batch.get("doc_ids"))
                scaled = loss * (count * world / total)
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_sum += loss.detach() * count
        return self.dist.mean(loss_sum) * world / total

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype forwards autocast to, evaluation's included (bf16, fp16); None in fp32, and under FSDP2,
        whose mixed-precision policy casts the parameters itself."""
        return None if self.amp_dtype == torch.float32 or not self.dist.autocast_needed else self.amp_dtype

    def _autocast(self):
        dtype = self.autocast_dtype
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.dist.device.type, dtype=dtype)

    def _log_step(self, loss, grad_norm, lr, phase: Phase, window: "_Window", peak: PeakEstimate, progress) -> None:
        if not self.dist.is_main:
            return
        tokens_per_sec = window.tokens / max(window.step_seconds, 1e-9)
        record = {
            "step": self.step, "loss": float(loss), "lr": lr, "grad_norm": float(grad_norm),
            "tokens_seen": self.tokens_seen, "tokens_per_sec": tokens_per_sec,
            # per device: mfu against the fastest precision's peak; precision_mfu against this run's precision's
            **peak.figures(self.raw_model.flops_per_token(phase.seq_len), tokens_per_sec / self.dist.world_size),
            "seq_len": phase.seq_len, "tokens_per_step": phase.tokens_per_step * self.dist.world_size,
            "data_wait": window.data_seconds / max(window.step_seconds, 1e-9),
            "nonfinite_skips": self.nonfinite_skips, "time": time.time(),
        }
        if self.scaler is not None:
            record["loss_scale"] = self.scaler.get_scale()
        if self.stage:
            record["stage"] = self.stage
        self.metrics.log(record)
        if progress:
            progress.update(self.step, f"loss {record['loss']:.4f} lr {lr:.2e} {tokens_per_sec:,.0f} tok/s "
                                       + describe_mfu(record, self.precision.chosen))

    def _log_event(self, record: dict | None) -> None:
        if record is not None and self.dist.is_main:
            self.metrics.log({"step": self.step, **record, **({"stage": self.stage} if self.stage else {})})

    def _peak_estimate(self) -> PeakEstimate:
        """MFU's denominators: the spec sheet's on a known GPU, else measured; measured again only when alone."""
        device = self.dist.device.type
        return PeakEstimate(self.precision, device, remeasure=peaks.remeasure if self.dist.world_size == 1 else None,
                            spec=device_spec_peaks(device))

    def _log_precision(self) -> None:
        """The precision and the peaks it was chosen from: one ``event: precision`` metrics record per stage,
        one log line per process and choice."""
        if self.dist.is_main:
            self.metrics.log({"step": self.step, "event": "precision", **self.precision.to_dict(),
                              **({"stage": self.stage} if self.stage else {})})
            log_choice_once(self.precision)

    def _log_data_report(self) -> None:
        """What the model was actually fed: tokens and epochs per source, and skipped records."""
        if not self.dist.is_main:
            return
        record = {"step": self.step, "event": "data", "mix": self.batches.mix_report(),
                  "skipped": self.batches.skipped()}
        if self.stage:
            record["stage"] = self.stage
        self.metrics.log(record)
        skipped = {name: counts for name, counts in record["skipped"].items() if counts}
        if skipped:
            log.warning("skipped malformed records: %s", skipped)

    # --- evaluation ---------------------------------------------------------------------------
    def validation_losses(self) -> dict[str, float]:
        """Token-weighted mean loss per domain over its held-out batches, plus ``val_loss`` over all
        (``train/validation.held_out_losses``); each domain's batches are read once and kept."""
        for name, make_batches in self.eval_batches.items():
            if name not in self._eval_sets:  # the held-out batches are the same every time: read them once
                self._eval_sets[name] = list(make_batches())
        return held_out_losses(self.model, self.raw_model, self._eval_sets, self.dist.device, self._autocast)

    def evaluate_and_notify(self) -> dict:
        losses = faults.shift_eval(self.dist.rank, self.stage, self.step, self.validation_losses())
        if not losses:
            return {}
        record = {"step": self.step, "tokens_seen": self.tokens_seen, **losses}
        if self.stage:
            record["stage"] = self.stage
        self.last_val = record
        if self.dist.is_main:
            self.metrics.log(record)
            log.info("step %d: %s", self.step, " ".join(f"{k}={v:.4f}" for k, v in record.items()
                                                          if k.startswith("val_loss")))
        for callback in self.callbacks:
            callback(self, record)
        val = record.get("val_loss")
        if val is not None and val < self.best_val_loss and self.step > 0:
            self.best_val_loss = val
            path = self.save(required=False)
            if path is not None:
                self.checkpoints.alias(path, "best")
        return record


def _weak(method: Callable) -> Callable:
    """``method`` without a strong reference to its object (None once that is gone): the prefetch thread must not
    keep a finished trainer, its model and its optimizer alive."""
    ref = weakref.WeakMethod(method)
    return lambda *args: None if ref() is None else ref()(*args)


@dataclass
class _Window:
    """Counters since the last logged step."""

    tokens: int = 0
    step_seconds: float = 0.0
    data_seconds: float = 0.0
