"""Perplexity on held-out batches, token-weighted, per domain.

A batch is ``{"input_ids": [B, T], "labels": [B, T]}`` with labels already aligned to the logits
(``labels[:, t]`` is the token predicted at position ``t``; -100 is ignored), the same contract as
``Transformer.forward(input_ids, labels)``.

Invariant: the loss is the sum of token losses over all batches divided by the number of scored
tokens, so batch boundaries and padding never change the result (a mean of batch means would).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
import torch.nn.functional as F

from syllabus.model.transformer import Transformer


@torch.no_grad()
def perplexity(model: Transformer, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """``{"loss": mean token loss (nats), "ppl": exp(loss), "tokens": scored tokens}``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    tokens = 0
    try:
        for batch in batches:
            input_ids = batch["input_ids"].to(device)
            labels = batch["labels"].to(device)
            logits = model(input_ids)
            loss_sum = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                       ignore_index=-100, reduction="sum")
            total += loss_sum.double().cpu()
            tokens += int((labels != -100).sum())
    finally:
        model.train(was_training)
    if tokens == 0:
        return {"loss": float("nan"), "ppl": float("nan"), "tokens": 0.0}
    loss = float(total) / tokens
    return {"loss": loss, "ppl": math.exp(loss), "tokens": float(tokens)}


def perplexity_by_domain(model: Transformer, batches_by_domain: Mapping[str, Iterable]) -> dict[str, dict[str, float]]:
    """``{domain: perplexity(model, batches)}`` for every domain, in the given order."""
    return {domain: perplexity(model, batches) for domain, batches in batches_by_domain.items()}
