"""Where numbers go: ``metrics.jsonl`` always; TensorBoard and Weights & Biases when asked; a progress line."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path


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
        return str(value)
    return value


class Progress:
    """A one-line progress display with ETA on a terminal; plain log lines otherwise."""

    def __init__(self, total: int, start: int = 0, label: str = "train", stream=sys.stderr):
        self.total, self.start, self.label, self.stream = total, start, label, stream
        self.t0 = time.perf_counter()
        self.tty = stream.isatty()

    def update(self, step: int, text: str) -> None:
        done = step - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        line = f"[{self.label}] step {step}/{self.total} {text} eta {_duration(eta)}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
