"""The optimizer every run trains with: AdamW with weight decay on matrices only."""

from __future__ import annotations

import torch

from syllabus.config.pretrain import PreTrainingConfig


def build_optimizer(model: torch.nn.Module, config: PreTrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; matrices decay, norms and embeddings do not. Fused where the device supports it."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embed_tokens" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2),
                             eps=config.adam_eps, fused=device.type in ("cpu", "cuda"))
