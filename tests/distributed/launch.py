"""Launching ``syllabus pretrain`` under torchrun (2 CPU ranks, gloo) in a subprocess, and signalling one rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.conftest import TINY_FLAGS

# fp32 so that ranks and world sizes can be compared to 1e-5; a small clip norm so clipping is exercised.
COMMON = ["--mixed-precision", "fp32", "--log-interval", "1", "--max-seq-length", "64", "--warmup-steps", "5",
          "--eval-interval", "1000", "--max-grad-norm", "0.5", "--device", "cpu", "--dist-timeout-seconds", "30",
          *TINY_FLAGS]


def pretrain_args(data: Path, tokenizer: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "syllabus", "pretrain", "--data-dir", str(data), "--tokenizer", str(tokenizer), "--out", str(out),
            *COMMON, *extra]


def torchrun_argv(nproc: int, args: list[str]) -> list[str]:
    """``--standalone`` rendezvous on localhost with a free port picked by the launcher: no clashes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def single_argv(args: list[str]) -> list[str]:
    return [sys.executable, *args]


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def step_values(run_dir: Path, key: str = "loss") -> dict[int, float]:
    """The last logged ``key`` of every step (a resumed run logs the steps after its checkpoint again)."""
    return {r["step"]: r[key] for r in records(run_dir) if key in r}


def assert_close(got: dict[int, float], want: dict[int, float], steps, tol: float) -> None:
    worst = max(abs(got[s] - want[s]) for s in steps)
    assert worst <= tol, f"largest difference {worst:.3g} over steps {list(steps)}: {got} vs {want}"


def worker_pids(launcher_pid: int) -> dict[int, int]:
    """rank → pid of the workers torchrun started (read from /proc: each worker's RANK variable)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != launcher_pid:
                continue
            for item in (proc / "environ").read_bytes().split(b"\0"):
                if item.startswith(b"RANK="):
                    pids[int(item[5:])] = int(proc.name)
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return pids


def logged_step(run_dir: Path, step: int) -> Callable[[], bool]:
    """A condition: ``run_dir`` has logged the loss of ``step``."""
    def reached() -> bool:
        try:
            return any(f'"step": {step}, "loss"' in line for line in open(run_dir / "metrics.jsonl"))
        except FileNotFoundError:
            return False
    return reached


def start_and_signal_rank(argv: list[str], when: Callable[[], bool], rank: int, sig: int, timeout: float = 120):
    """Start torchrun; as soon as ``when()`` holds send ``sig`` to rank ``rank`` only; return (code, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + timeout
    while not when():
        assert proc.poll() is None, f"exited early: {proc.stderr.read()[-3000:]}"
        assert time.time() < deadline, "timed out waiting for " + str(when)
        time.sleep(0.002)
    os.kill(worker_pids(proc.pid)[rank], sig)  # workers are direct children of the launcher
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err
