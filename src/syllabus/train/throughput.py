"""How close a run gets to the machine's limit: MFU against the measured matmul peaks (see ``peaks``)."""

from __future__ import annotations

import time

import torch

from syllabus.train import peaks
from syllabus.train.precision import PrecisionChoice

PEAK_SIZES = (1024, 2048, 3072, 4096)


def machine_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu",
                       sizes: tuple[int, ...] = PEAK_SIZES, seconds: float = 0.5) -> tuple[float, dict[int, float]]:
    """The best square-matmul FLOP/s over ``sizes``, and each size's; measured now, never cached (a benchmark
    calls it in the same run as the figures it divides, so noise is shared)."""
    per_size = {n: peaks.measure_matmul_flops(dtype, device, n, seconds) for n in sizes}
    return max(per_size.values()), per_size


def mfu(flops_per_token: float, tokens_per_sec: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: ``flops_per_token × tokens_per_sec / peak_flops`` (0 when no peak)."""
    return flops_per_token * tokens_per_sec / peak_flops if peak_flops > 0 else 0.0


class PeakEstimate:
    """MFU of a run against the fastest precision's matmul peak on its device (``mfu``) and against its own
    precision's (``precision_mfu``), with both peaks, as metrics keys.

    A run at a precision that leaves speed on the table cannot show a high ``mfu``. When a figure comes out
    above 1 the peak it divided by was read low (the machine was busy): that precision is measured again
    (``peaks.remeasure``, which updates the machine's cache) and the figure recomputed; peaks only rise. On a
    machine that stays busy a precision is measured again at most once per ``REMEASURE_SECONDS``."""

    REMEASURE_SECONDS = 300.0

    def __init__(self, choice: PrecisionChoice, device: str, remeasure=peaks.remeasure, clock=time.monotonic):
        self.device, self.chosen, self._remeasure, self._clock = device, choice.chosen, remeasure, clock
        self.peaks = dict(choice.peaks) or {choice.chosen: 0.0}
        self._measured_at: dict[str, float] = {}

    def figures(self, flops_per_token: float, tokens_per_sec: float) -> dict[str, float]:
        """``{"mfu", "precision_mfu", "peak_flops", "precision_peak_flops"}``; FLOP/s and fractions."""
        achieved = flops_per_token * tokens_per_sec
        for name in sorted({self.chosen, max(self.peaks, key=self.peaks.get)}):
            last = self._measured_at.get(name)
            if achieved > self.peaks.get(name, 0.0) > 0 and (last is None or
                                                               self._clock() - last >= self.REMEASURE_SECONDS):
                self.peaks[name] = max(self.peaks[name], self._remeasure(name, self.device))
                self._measured_at[name] = self._clock()
        best, own = max(self.peaks.values()), self.peaks.get(self.chosen, max(self.peaks.values()))
        return {"mfu": mfu(flops_per_token, tokens_per_sec, best), "precision_mfu": mfu(flops_per_token,
                                                                                        tokens_per_sec, own),
                "peak_flops": best, "precision_peak_flops": own}

    def mfu(self, flops_per_token: float, tokens_per_sec: float) -> float:
        """MFU against the best precision's peak."""
        return self.figures(flops_per_token, tokens_per_sec)["mfu"]
