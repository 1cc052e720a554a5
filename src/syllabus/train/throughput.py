"""The machine's limit and how close a run gets to it: a short matmul calibration, and MFU."""

from __future__ import annotations

import time
from functools import lru_cache

import torch

PEAK_SIZES = (1024, 2048, 3072, 4096)


@lru_cache(maxsize=None)
def matmul_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu", size: int = 1024,
                      seconds: float = 0.25) -> float:
    """Measured FLOP/s of a square ``size`` matmul in ``dtype`` on ``device``, all threads (best of bursts)."""
    return _measure_matmul(dtype, device, size, seconds)


def machine_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu",
                       sizes: tuple[int, ...] = PEAK_SIZES, seconds: float = 0.5) -> tuple[float, dict[int, float]]:
    """The best square-matmul FLOP/s over ``sizes`` (the limit MFU is measured against), and each size's.

    Not cached: a benchmark calls it in the same run as the figures it divides, so noise is shared.
    """
    per_size = {n: _measure_matmul(dtype, device, n, seconds) for n in sizes}
    return max(per_size.values()), per_size


def _measure_matmul(dtype: torch.dtype, device: str, size: int, seconds: float) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up
    reps = max(1, int(4 * (1024 / size) ** 3))  # ~same work per burst whatever the size
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, reps * 2 * size**3 / (time.perf_counter() - t0))
        if time.perf_counter() >= deadline:
            return best


def mfu(flops_per_token: float, tokens_per_sec: float, peak_flops: float) -> float:
    return flops_per_token * tokens_per_sec / peak_flops if peak_flops > 0 else 0.0


class PeakEstimate:
    """The matmul peak a run's MFU is measured against. Measured once; measured again whenever an MFU comes
    out above 1 (the first reading was taken while the machine was busy). It only ever rises."""

    def __init__(self, dtype: torch.dtype, device: str):
        self.dtype, self.device = dtype, device
        self.flops = matmul_peak_flops(dtype, device)

    def mfu(self, flops_per_token: float, tokens_per_sec: float) -> float:
        value = mfu(flops_per_token, tokens_per_sec, self.flops)
        if value > 1.0:
            self.flops = max(self.flops, matmul_peak_flops.__wrapped__(self.dtype, self.device))
            value = mfu(flops_per_token, tokens_per_sec, self.flops)
        return value
