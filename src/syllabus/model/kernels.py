"""Which kernel the model uses where there are several that compute the same thing: the attention path per
shape class, and the chunked loss's group size.

A ``KernelChoice`` is data: the trainer gets one from ``train/calibration.py`` (measured once per machine and
cached with the matmul peaks) and hands it to ``Transformer.use_kernels``. A shape class it does not name
(evaluation at another length, generation, a model no trainer touched) takes the defaults below, which are
the rules the model followed before calibration existed.

Attention paths (``attention.attend``):

- ``sdpa``: ``scaled_dot_product_attention`` (the CPU's flash kernel; CUDA's flash / memory-efficient ones);
- ``explicit``: bmm → softmax → bmm with fp32 scores and softmax (``attention._ExplicitAttention``);
- ``explicit-bf16``: the same with scores, softmax and its gradient in the input dtype (as Hugging Face's
  eager attention computes them); chosen only where its error stays within ``calibration.ACCURACY_BOUND``
  of the flash kernel's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch

log = logging.getLogger("syllabus")

ATTENTION_PATHS = ("sdpa", "explicit", "explicit-bf16")
DEFAULT_EXPLICIT_MAX_KEYS = 1024  # the rule before calibration (measured on an AMD EPYC without AMX)
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def bucket(n: int, smallest: int = 64) -> int:
    """The shape class of a length: the next power of two >= ``n`` (at least ``smallest``)."""
    return max(smallest, 1 << max(0, int(n) - 1).bit_length())


def attention_class(dtype: torch.dtype | str, head_dim: int, keys: int) -> str:
    """e.g. ``attention|bf16|d64|s256``: precision, head size and keys rounded up to a power of two."""
    name = dtype if isinstance(dtype, str) else _DTYPE_NAMES.get(dtype, str(dtype))
    return f"attention|{name}|d{head_dim}|s{bucket(keys)}"


def loss_class(dtype: torch.dtype | str, hidden: int, vocab: int, rows: int) -> str:
    """e.g. ``loss|bf16|h384|v8192|n2048``: precision, width, vocabulary and rows rounded up to a power of two."""
    name = dtype if isinstance(dtype, str) else _DTYPE_NAMES.get(dtype, str(dtype))
    return f"loss|{name}|h{hidden}|v{vocab}|n{bucket(rows, 256)}"


@dataclass(frozen=True)
class KernelChoice:
    """``attention``: shape class (``attention_class``) → path (``ATTENTION_PATHS``); ``loss_group``: shape
    class (``loss_class``) → logits elements per group of rows. ``source`` says where the figures came from
    (``measured``, ``cached``, ``default``); ``seconds`` holds the timings they were chosen by (per class and
    candidate, seconds per forward + backward) and ``errors`` the attention paths' relative errors."""

    attention: dict[str, str] = field(default_factory=dict)
    loss_group: dict[str, int] = field(default_factory=dict)
    source: str = "default"
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)

    def attention_path(self, device_type: str, dtype: torch.dtype, head_dim: int, keys: int) -> str:
        """The path for attention over ``keys`` keys: the calibrated one for its class, else the default rule
        (CPU, bf16/fp16, up to ``DEFAULT_EXPLICIT_MAX_KEYS`` keys: ``explicit``; anything else: ``sdpa``)."""
        if device_type != "cpu":
            return "sdpa"
        chosen = self.attention.get(attention_class(dtype, head_dim, keys))
        if chosen is not None:
            return chosen
        return "explicit" if dtype != torch.float32 and keys <= DEFAULT_EXPLICIT_MAX_KEYS else "sdpa"

    def loss_group_elements(self, dtype: torch.dtype, hidden: int, vocab: int, rows: int) -> int | None:
        """The calibrated group size for the loss's class, else None (then ``loss.default_group_elements``: a
        cache-sized group on the CPU, a memory-sized one on GPUs)."""
        return self.loss_group.get(loss_class(dtype, hidden, vocab, rows))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "KernelChoice":
        return cls({str(k): str(v) for k, v in data.get("attention", {}).items()},
                   {str(k): int(v) for k, v in data.get("loss_group", {}).items()}, str(data.get("source", "")),
                   dict(data.get("seconds", {})), dict(data.get("errors", {})))

    def describe(self) -> str:
        """One line, e.g. ``attention bf16 d64 s256: explicit, s1024: sdpa; loss group 2048 rows (cached)``."""
        parts = [f"{k.split('|', 1)[1].replace('|', ' ')}: {v}" for k, v in sorted(self.attention.items())]
        parts += [f"loss {k.split('|', 1)[1].replace('|', ' ')}: {v:,} elements"
                  for k, v in sorted(self.loss_group.items())]
        return "; ".join(parts) + f" ({self.source})" if parts else f"defaults ({self.source})"


DEFAULT = KernelChoice()


def kernels_on_resume(current: KernelChoice, saved: KernelChoice) -> KernelChoice:
    """The kernels a resumed run continues with: the checkpoint's for every shape class it names, this
    machine's (``current``) for the others (a precision or length the checkpoint never trained at). The paths
    agree within bounds, not bit for bit, so a choice re-measured on resume would change the run's numbers;
    this keeps an interrupted run equal to an uninterrupted one, as ``precision_on_resume`` does for precision."""
    merged = {part: {**getattr(current, part), **getattr(saved, part)}
              for part in ("attention", "loss_group", "seconds", "errors")}
    kept = saved.source if saved.source.startswith("kept") else f"kept from the checkpoint ({saved.source})"
    choice = KernelChoice(**merged, source=kept)
    if (choice.attention, choice.loss_group) != (current.attention, current.loss_group):
        log.info("kernels: kept from the checkpoint: %s (this machine would now pick %s)", choice.describe(),
                 current.describe())
    return choice
