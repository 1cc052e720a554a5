"""RMSNorm and SwiGLU as single fused kernels (``fused_kernels: true``), built by ``torch.compile``.

In eager PyTorch each is a chain of elementwise kernels with a full pass over memory per op, forward and
backward (RMSNorm: square, mean, rsqrt, two products, a cast to the matmul dtype; SwiGLU: silu, product).
Compiling just these two functions lets inductor emit one loop each way (C++ on the CPU, Triton on CUDA)
while the rest of the model stays eager: a few seconds of compilation per process (inductor caches the
kernels on disk) instead of a whole-model compile. ``rms_norm`` and ``swiglu`` are the eager definitions;
the fused versions compute the same values (tests/model/test_fused.py).

A machine where inductor cannot build (no C++ compiler) gets one warning and the eager functions.
Shapes are static per compile: a training run sees one shape per curriculum phase.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor


def rms_norm(x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    """weight · x / rms(x), normalised in fp32 (as LLaMA does), returned in ``dtype``. The definition: what
    ``torch.compile`` fuses, and the reference ``eager_rms_norm`` is tested against."""
    return (weight * F.rms_norm(x.float(), (x.shape[-1],), eps=eps)).to(dtype)


def eager_rms_norm(x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    """``rms_norm`` in fewer passes over memory for eager PyTorch (``_EagerRMSNorm``): the same fp32 arithmetic,
    x [..., d] in any float dtype, weight fp32 [d]; returns [..., d] in ``dtype``."""
    return _EagerRMSNorm.apply(x, weight, eps, dtype)


class _EagerRMSNorm(torch.autograd.Function):
    """Forward: the row norms in one fp32 reduction read straight from x (no fp32 copy of x), then x·rstd·w
    and the cast. Backward by hand, in fp32: with x̂ = x·rstd and gw = g·w, dw = Σ_rows g·x̂ and
    dx = rstd·(gw - x̂·mean(gw·x̂)), a handful of passes where autograd through ``rms_norm``'s composite
    (pow, mean, rsqrt, two products, two casts) takes about twice as many. Saves x (already kept by the
    residual stream), w and one fp32 value per row. fwd + bwd at [8, 256, 384] bf16: 3.2 -> 2.5 ms on the
    AMX Xeon (docs/performance.md); values and gradients as ``rms_norm``'s (tests/model/test_fused.py)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        rstd = rstd.square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        ctx.save_for_backward(x, weight, rstd)
        return (x * rstd).mul_(weight).to(dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, rstd = ctx.saved_tensors
        xhat = x * rstd
        dw = (grad * xhat).sum(dim=tuple(range(grad.dim() - 1))) if ctx.needs_input_grad[1] else None
        gw = grad * weight
        dot = (gw * xhat).mean(dim=-1, keepdim=True)
        return gw.sub_(xhat.mul_(dot)).mul_(rstd).to(x.dtype), dw, None, None


def swiglu(gate: Tensor, up: Tensor) -> Tensor:
    return F.silu(gate) * up


def fused_rms_norm(x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype) -> Tensor:
    return _fused("rms_norm", rms_norm)(x, weight, eps, dtype)


def fused_swiglu(gate: Tensor, up: Tensor) -> Tensor:
    return _fused("swiglu", swiglu)(gate, up)


_unavailable: str | None = None  # why inductor could not build here, once it failed
_built: set[str] = set()  # kernels that compiled and ran once


@functools.cache
def _compiled(name: str, fn):
    return torch.compile(fn, dynamic=False, fullgraph=True)


def _fused(name: str, fn):
    """The compiled ``fn``, or ``fn`` itself inside a graph being compiled (which fuses on its own) and on a
    machine where inductor failed to build."""
    if _unavailable or torch.compiler.is_compiling():
        return fn
    if name in _built:
        return _compiled(name, fn)
    return functools.partial(_first_call, name, fn)


def _first_call(name: str, fn, *args):
    global _unavailable
    try:
        out = _compiled(name, fn)(*args)
    except Exception as error:  # noqa: BLE001 - whatever stops the build: warn once, stay eager
        _unavailable = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        warnings.warn(f"fused_kernels: torch.compile could not build the {name} kernel ({_unavailable}); "
                      f"running the eager version", stacklevel=3)
        return fn(*args)
    _built.add(name)
    return out
