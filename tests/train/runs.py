"""Running ``syllabus pretrain`` in a subprocess and reading what it logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TINY_FLAGS


def pretrain_argv(data: Path, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syllabus", "pretrain", "--data-dir", str(data), "--tokenizer", str(tokenizer),
            "--out", str(out), "--mixed-precision", "fp32", "--log-interval", "1", "--max-seq-length", "64",
            "--batch-size", "4", "--warmup-steps", "5", "--eval-interval", "1000", *TINY_FLAGS, *extra]


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def start_and_signal(argv: list[str], when: Path, sig: int, timeout: float = 120) -> int:
    """Start ``argv``; as soon as ``when`` exists send ``sig``; return the exit code."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not when.exists():
        assert proc.poll() is None, f"exited early: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "timed out waiting for " + str(when)
        time.sleep(0.002)
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    return proc.returncode


def step_losses(run_dir: Path) -> dict[int, float]:
    """The last logged loss of every step (a resumed run logs the steps after its checkpoint again)."""
    losses = {}
    for line in open(run_dir / "metrics.jsonl"):
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]
    return losses
