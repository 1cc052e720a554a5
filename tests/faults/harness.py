"""Running ``syllabus`` as a real process, waiting for something it writes, and hitting it with a signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from tests.conftest import TINY_FLAGS

# One thread per process: the suite runs several processes on a small machine, and every run of a test
# (reference and resumed) uses the same setting, so losses compare bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def pretrain_argv(data: Path, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syllabus", "pretrain", "--data-dir", str(data), "--tokenizer", str(tokenizer),
            "--out", str(out), "--mixed-precision", "fp32", "--device", "cpu", "--log-interval", "1",
            "--max-seq-length", "64", "--batch-size", "4", "--warmup-steps", "2", "--eval-interval", "1000",
            "--eval-batches", "1", *TINY_FLAGS, *extra]


def syllabus(argv: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**ENV, **(env or {})})


def ok(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    done = syllabus(argv, env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    """Start ``argv``; its stderr goes to a file (a pipe nobody reads could fill up and block it): ``stderr_of``."""
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True, env={**ENV, **(env or {})})
    proc.stderr_file = log
    return proc


def stderr_of(proc: subprocess.Popen) -> str:
    proc.stderr_file.seek(0)
    return proc.stderr_file.read()


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    proc.wait(timeout=timeout)
    return proc.returncode, stderr_of(proc)


def wait_until(proc: subprocess.Popen, condition: Callable[[], bool], timeout: float = 120,
               poll: float = 0.001) -> bool:
    """True as soon as ``condition()`` holds; False if the process exits first."""
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.time() < deadline, "timed out"
        time.sleep(poll)
    return True


def signal_and_wait(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    os.kill(proc.pid, sig)
    return finish(proc)


def metric_records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.endswith("}"):  # a line being written is not complete yet
            rows.append(json.loads(line))
    return rows


def step_losses(run_dir: Path) -> dict[int, float]:
    """Step -> the last logged loss (a resumed run logs the steps after its checkpoint again)."""
    return {r["step"]: r["loss"] for r in metric_records(run_dir) if "loss" in r}


def last_logged_step(run_dir: Path, stage: str | None = None) -> int:
    steps = [r["step"] for r in metric_records(run_dir) if "loss" in r and r.get("stage") == stage]
    return max(steps, default=0)


def checkpoint_steps(folder: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in folder.glob("step_*"))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
