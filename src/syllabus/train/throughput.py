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
    """MFU of one device against the fastest precision's matmul peak (``mfu``) and against its own precision's
    (``precision_mfu``), with both peaks, as metrics keys. ``figures`` takes one device's tokens per second:
    a run on N ranks divides its global rate by N first (MFU is per device; a 40% run on 8 GPUs reads 40%).

    On CUDA the peaks are the device's dense spec-sheet figures (``spec_peaks``: what torchtitan, nanoGPT and
    papers divide by) when it is in the table, with the measured matmul-burst figure beside them
    (``measured_mfu``, ``measured_peak_flops``); a device not in the table falls back to the measured peaks,
    and ``peak_source`` says which was used. On a CPU the measured peaks are the only ones (no extra keys).

    A run at a precision that leaves speed on the table cannot show a high ``mfu``. When a figure against a
    measured peak comes out above 1, that peak was read low (the machine was busy): that precision is
    measured again (``peaks.remeasure``, which updates the machine's cache) and the figure recomputed; peaks
    only rise. On a machine that stays busy a precision is measured again at most once per
    ``REMEASURE_SECONDS``. Only a single-process run measures again (``remeasure=None`` otherwise): on many
    ranks the main rank alone would stall while every other rank waited for it at the next collective."""

    REMEASURE_SECONDS = 300.0

    def __init__(self, choice: PrecisionChoice, device: str, remeasure=peaks.remeasure, clock=time.monotonic,
                 spec: tuple[str, dict[str, float]] | None = None):
        self.device, self.chosen, self._remeasure, self._clock = device, choice.chosen, remeasure, clock
        self.peaks = dict(choice.peaks) or {choice.chosen: 0.0}
        self._measured_at: dict[str, float] = {}
        self.spec_label, self.spec = spec if spec else (None, {})

    def figures(self, flops_per_token: float, tokens_per_sec: float) -> dict:
        """``{"mfu", "precision_mfu", "peak_flops", "precision_peak_flops"}`` (FLOP/s and fractions) for one
        device running ``tokens_per_sec``; on CUDA also ``peak_source`` (``spec: <label>`` or ``measured``) and,
        against a spec peak, ``measured_mfu`` and ``measured_peak_flops``."""
        achieved = flops_per_token * tokens_per_sec
        for name in sorted({self.chosen, max(self.peaks, key=self.peaks.get)}):
            last = self._measured_at.get(name)
            if self._remeasure is not None and achieved > self.peaks.get(name, 0.0) > 0 and (
                    last is None or self._clock() - last >= self.REMEASURE_SECONDS):
                self.peaks[name] = max(self.peaks[name], self._remeasure(name, self.device))
                self._measured_at[name] = self._clock()
        measured = max(self.peaks.values())
        table = self.spec or self.peaks
        best, own = max(table.values()), table.get(self.chosen, max(table.values()))
        out = {"mfu": mfu(flops_per_token, tokens_per_sec, best),
               "precision_mfu": mfu(flops_per_token, tokens_per_sec, own),
               "peak_flops": best, "precision_peak_flops": own}
        if self.device == "cuda":
            out["peak_source"] = f"spec: {self.spec_label}" if self.spec else "measured"
            if self.spec:
                out.update(measured_mfu=mfu(flops_per_token, tokens_per_sec, measured), measured_peak_flops=measured)
        return out

    def mfu(self, flops_per_token: float, tokens_per_sec: float) -> float:
        """MFU against the best precision's peak."""
        return self.figures(flops_per_token, tokens_per_sec)["mfu"]


def describe_mfu(record: dict, chosen: str) -> str:
    """The progress line's MFU part from a step record (``figures`` keys), e.g. ``mfu 41.0% of 989,400 GFLOP/s
    (spec: H100/H200 SXM; 55.2% of the measured 735,000)``; on a CPU as before (``mfu 3.1% of 426 GFLOP/s``,
    plus the own precision's MFU when it is slower than the best)."""
    own = f" ({chosen} {record['precision_mfu']:.0%})" if record["precision_peak_flops"] < record["peak_flops"] else ""
    line = f"mfu {record['mfu']:.1%} of {record['peak_flops'] / 1e9:,.0f} GFLOP/s{own}"
    source = record.get("peak_source")
    if source == "measured":
        line += " (measured peak: this GPU is not in the spec table)"
    elif source:
        line += (f" ({source}; {record['measured_mfu']:.1%} of the measured "
                 f"{record['measured_peak_flops'] / 1e9:,.0f})")
    return line
