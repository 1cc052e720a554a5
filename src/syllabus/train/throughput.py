"""The machine's limit and how close a run gets to it: a short matmul calibration, and MFU."""

from __future__ import annotations

import time
from functools import lru_cache

import torch


@lru_cache(maxsize=None)
def matmul_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu", size: int = 1024,
                      seconds: float = 0.25) -> float:
    """Measured FLOP/s of a square ``size`` matmul in ``dtype`` on ``device``, all threads (best of bursts)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t0))
    return best


def mfu(flops_per_token: float, tokens_per_sec: float, peak_flops: float) -> float:
    return flops_per_token * tokens_per_sec / peak_flops if peak_flops > 0 else 0.0
