"""Which precision a run computes in: ``mixed_precision: auto`` decided by the hardware, or the user's.

``auto`` on CUDA: bf16 where the device computes it natively (compute capability 8.0 or later: Ampere on;
emulated bf16 on a V100 or T4 is slow), else fp16 with the gradient scaler (fp32 under FSDP2,
which refuses fp16). On the CPU: bf16 only where the processor has native bf16 matmul instructions
(``avx512_bf16``, ``amx_bf16``; ``bf16`` on Arm) *and* the machine's measured bf16 matmul peak beats fp32's;
else fp32 (emulated bf16 can be 3–5× slower than fp32). An explicit ``fp32``/``bf16``/``fp16`` is obeyed; on
a CPU where its matmuls are more than 1.5× slower than another precision's, that is warned about once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch

from syllabus.train import peaks

log = logging.getLogger("syllabus")

SLOW_FACTOR = 1.5  # an explicit precision this much slower than the best one is warned about
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (AVX-512 BF16, AMX) and Arm (FEAT_BF16)

_warned: set[tuple[str, str]] = set()
_logged: set[str] = set()


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses, why, and the measured matmul peaks it was chosen from.

    ``peaks`` maps a precision name to this device's matmul peak in FLOP/s (``fp32`` and ``bf16``, plus
    ``fp16`` where it was measured). Saved in checkpoints and run configs as ``to_dict()``."""

    requested: str  # auto, fp32, bf16, fp16
    chosen: str  # fp32, bf16, fp16
    reason: str
    peaks: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> str:
        """The precision with the highest measured peak (``chosen`` when nothing was measured)."""
        return max(self.peaks, key=self.peaks.get) if self.peaks else self.chosen

    @property
    def best_peak(self) -> float:
        """FLOP/s of the fastest precision on this device: the MFU denominator."""
        return max(self.peaks.values(), default=0.0)

    @property
    def chosen_peak(self) -> float:
        """FLOP/s of the chosen precision's matmuls (``best_peak`` when it was not measured)."""
        return self.peaks.get(self.chosen, self.best_peak)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PrecisionChoice":
        return cls(str(data["requested"]), str(data["chosen"]), str(data.get("reason", "")),
                   {str(k): float(v) for k, v in data.get("peaks", {}).items()})

    def describe(self) -> str:
        """One line, e.g. ``bf16 (auto: native bf16 matmul is faster; matmul peak bf16 426, fp32 192 GFLOP/s)``."""
        figures = ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in sorted(self.peaks.items(), key=lambda kv: -kv[1]))
        return f"{self.chosen} ({self.requested}: {self.reason}" + (f"; matmul peak {figures} GFLOP/s)" if figures
                                                                       else ")")


def choose_precision(requested: str, device_type: str, peaks_flops: dict[str, float], *, native_bf16: bool,
                     sharded: bool = False) -> PrecisionChoice:
    """Decide from the capability and the measured peaks; no measuring, no I/O (tests inject both).

    ``device_type`` is ``cpu`` or ``cuda``; ``native_bf16`` is the CPU's bf16 instructions on ``cpu``, and
    ``torch.cuda.is_bf16_supported(including_emulation=False)`` on ``cuda``; ``sharded`` (FSDP2) rules fp16 out."""
    if requested != "auto":
        return PrecisionChoice(requested, requested, "as configured", dict(peaks_flops))
    if device_type == "cuda":
        if native_bf16:
            return PrecisionChoice("auto", "bf16", "the GPU supports bf16", dict(peaks_flops))
        if sharded:
            return PrecisionChoice("auto", "fp32", "no bf16 on this GPU and FSDP2 refuses fp16", dict(peaks_flops))
        return PrecisionChoice("auto", "fp16", "no bf16 on this GPU: fp16 with loss scaling", dict(peaks_flops))
    bf16, fp32 = peaks_flops.get("bf16", 0.0), peaks_flops.get("fp32", 0.0)
    if not native_bf16:
        return PrecisionChoice("auto", "fp32", "no native bf16 matmul on this CPU", dict(peaks_flops))
    if bf16 > fp32:
        return PrecisionChoice("auto", "bf16", "native bf16 matmul, faster than fp32", dict(peaks_flops))
    return PrecisionChoice("auto", "fp32", "bf16 matmul measured no faster than fp32", dict(peaks_flops))


def slow_precision_warning(choice: PrecisionChoice, device_type: str) -> str | None:
    """The warning for an explicit precision whose CPU matmuls are > ``SLOW_FACTOR``× slower than the best."""
    if choice.requested == "auto" or device_type != "cpu" or choice.chosen not in choice.peaks:
        return None
    own, best = choice.peaks[choice.chosen], choice.best_peak
    if own <= 0 or best <= SLOW_FACTOR * own:
        return None
    return (f"mixed_precision: {choice.chosen} runs matmuls at {own / 1e9:,.0f} GFLOP/s on this CPU, "
            f"{best / own:.1f}x slower than {choice.best} ({best / 1e9:,.0f}); mixed_precision: auto would use "
            f"{choice.best}")


def precision_on_resume(current: PrecisionChoice, saved: PrecisionChoice) -> PrecisionChoice:
    """The precision a resumed run continues in: under ``auto`` the checkpoint's (exact resume never changes
    precision silently, even where this machine would now choose otherwise); an explicit value is obeyed,
    with a warning when the checkpoint was trained in another."""
    if saved.chosen == current.chosen:
        return current
    if current.requested != "auto":
        log.warning("mixed_precision: %s as configured; the checkpoint was trained in %s", current.chosen,
                    saved.chosen)
        return current
    log.info("mixed_precision: auto keeps %s, the precision of the checkpoint (this machine would pick %s)",
             saved.chosen, current.chosen)
    return PrecisionChoice("auto", saved.chosen, f"kept from the checkpoint ({saved.reason})", current.peaks)


def log_choice_once(choice: PrecisionChoice) -> None:
    """Log ``precision: <choice.describe()>`` once per process and distinct choice (not once per stage)."""
    line = choice.describe()
    if line not in _logged:
        _logged.add(line)
        log.info("precision: %s", line)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU's flags (``/proc/cpuinfo``, or ``cpuinfo`` given) include a native bf16 matmul."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(requested: str, device: torch.device | str, *, sharded: bool = False) -> PrecisionChoice:
    """``choose_precision`` with this machine's capability and its (cached) matmul peaks; warns once about
    an explicit precision that is much slower than the alternative. Measures the peaks on first use on a
    machine (a few seconds; see ``peaks``)."""
    device_type = torch.device(device).type
    if device_type == "cuda":  # compute capability >= 8.0; torch's default also counts slow emulated bf16
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = cpu_has_native_bf16()
    names = ["fp32", "bf16"] + (["fp16"] if requested == "fp16" or (device_type == "cuda" and not native) else [])
    choice = choose_precision(requested, device_type, peaks.machine_peaks(names, device_type), native_bf16=native,
                              sharded=sharded)
    warning = slow_precision_warning(choice, device_type)
    if warning and (requested, peaks.machine_key(device_type)) not in _warned:
        _warned.add((requested, peaks.machine_key(device_type)))
        log.warning(warning)
    return choice


def use_tf32_matmuls(device: torch.device | str) -> None:
    """On CUDA, let fp32 matmuls (and convolutions) use TF32 tensor cores, as torchtitan and nanoGPT do: eval
    forwards, the fp32 parts of a mixed-precision step and fp32 runs are several times faster on Ampere and later.
    Process-wide, and set through the CUDA-only switch: ``set_float32_matmul_precision("high")`` would also turn
    on TF32 for the CPU's oneDNN matmuls, and the CPU path stays exactly fp32. Nothing on other devices."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def resolve_on_all_ranks(requested: str, device: torch.device, *, sharded: bool = False) -> PrecisionChoice:
    """``resolve_precision`` on rank 0, the same answer handed to every rank (ranks never disagree, and only
    one process measures)."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1):
        return resolve_precision(requested, device, sharded=sharded)
    box = [resolve_precision(requested, device, sharded=sharded).to_dict() if tdist.get_rank() == 0 else None]
    tdist.broadcast_object_list(box, src=0)
    return PrecisionChoice.from_dict(box[0])
