"""Rotary position embeddings in the half-split layout Hugging Face's Llama uses (first half, second half)."""

from __future__ import annotations

import torch
from torch import Tensor

from syllabus.config.model import RopeScaling
from syllabus.model.rope_scaling import scaled_inv_freq


def rotary_tables(head_dim: int, max_len: int, theta: float,
                  scaling: RopeScaling | None = None) -> tuple[Tensor, Tensor]:
    """cos and sin of shape [max_len, head_dim] in the half-split layout (first half, second half); frequencies
    stretched by ``scaling`` when given (``model/rope_scaling.py``)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    if scaling is not None:
        inv_freq = scaled_inv_freq(inv_freq, scaling)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the last dimension (head_dim) by position; cos/sin broadcast against x ([T, head_dim] for
    [B, heads, T, head_dim], [T, 1, head_dim] for [B, T, heads, head_dim]). Computed in x's dtype."""
    return _Rotary.apply(x, cos.to(x.dtype), sin.to(x.dtype))


class _Rotary(torch.autograd.Function):
    """x·cos + rotate_half(x)·sin in three passes over x (no concatenated copy, no negation). The gradient
    is the rotation by minus the angle, because the tables repeat their angles in both halves."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin, -1.0), None, None


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, sign: float) -> Tensor:
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-sign)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:], value=sign)
    return out
