"""Where numbers go: ``metrics.jsonl`` always; TensorBoard and Weights & Biases when asked; a progress line."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm


class MetricsLog:
    """Appends one JSON object per call to ``metrics.jsonl`` and mirrors scalars to the enabled sinks.

    Only the process that owns the run folder (rank 0) makes one.
    """

    def __init__(self, out_dir: str | Path, *, use_tensorboard: bool = False, use_wandb: bool = False,
                 wandb_project: str = "syllabus", wandb_mode: str = "offline", run_name: str | None = None,
                 config: dict | None = None, filename: str = "metrics.jsonl"):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_dir / filename, "a", buffering=1)
        self._tb = None
        self._wandb = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
        if use_wandb:
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb.init(project=wandb_project, name=run_name or self.out_dir.name, mode=wandb_mode,
                                     dir=str(self.out_dir), config=config or {}, resume="allow")

    def log(self, record: dict) -> None:
        record = {k: _plain(v) for k, v in record.items()}
        self._file.write(json.dumps(record) + "\n")
        step = record.get("step")
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, global_step=step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class NullLog:
    """The metrics sink of processes that do not own the run folder (ranks other than 0): logs nothing."""

    def log(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf/nan: null, read back as "not measured" (plan/numbers.py)
    return value


class Progress:
    """The progress line. On a terminal a ``tqdm`` bar (steps, rate, ETA) whose postfix is the text the trainer
    passes (its figures: loss, LR, tokens/s, and whatever else its progress record carries); elsewhere (a log
    file) one plain line per update, ``[label] step N/total text eta H:MM:SS``. Writes to ``stream`` only."""

    def __init__(self, total: int, start: int = 0, label: str = "train", stream=None):
        stream = stream or sys.stderr  # the one current at the call (a default bound at import can be closed)
        self.total, self.start, self.label, self.stream = total, start, label, stream
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, initial=start, desc=label, unit="step", file=stream, dynamic_ncols=True,
                        mininterval=0) if stream.isatty() else None

    def update(self, step: int, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(step - self.bar.n)
            return
        done = step - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        shown = tqdm.format_interval(eta) if math.isfinite(eta) else "?"
        self.stream.write(f"[{self.label}] step {step}/{self.total} {text} eta {shown}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
