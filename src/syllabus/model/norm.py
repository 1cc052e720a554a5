"""RMSNorm: the LLaMA normalisation, in fp32, returning the dtype the next matmul computes in."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from syllabus.model.fused import eager_rms_norm, fused_rms_norm, rms_norm


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.fused = False  # Transformer.use_fused_kernels

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 (as LLaMA does); return the dtype the next matmul computes in.
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        if self.fused and self.training:
            return fused_rms_norm(x, self.weight, self.eps, dtype)
        if torch.compiler.is_compiling():  # inductor fuses the plain definition itself
            return rms_norm(x, self.weight, self.eps, dtype)
        return eager_rms_norm(x, self.weight, self.eps, dtype)
