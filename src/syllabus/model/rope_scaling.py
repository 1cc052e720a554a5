"""RoPE frequencies stretched for longer contexts, as the imported architectures define them.

Only ``llama3`` (Llama 3.1/3.2): with ``λ = 2π / f`` the wavelength of frequency ``f`` and ``L`` the original
context, wavelengths above ``L / low_freq_factor`` are divided by ``factor``, those below ``L / high_freq_factor``
kept, and the ones between blended linearly in ``L / λ`` (Meta's ``apply_scaling`` in llama-models, transformers'
``_compute_llama3_parameters``; the attention scale stays 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from syllabus.config.model import RopeScaling


def scaled_inv_freq(inv_freq: Tensor, scaling: RopeScaling) -> Tensor:
    """``inv_freq`` [head_dim / 2] (fp32) with ``scaling`` applied; a new tensor of the same shape and dtype."""
    old_context = scaling.original_max_position_embeddings
    low_wavelen = old_context / scaling.low_freq_factor
    high_wavelen = old_context / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    stretched = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    blended = (1 - smooth) * stretched / scaling.factor + smooth * stretched
    between = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(between, blended, stretched)
