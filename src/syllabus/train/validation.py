"""Held-out loss during training: the ``val_loss`` the trainer logs, the forgetting gate reads and ``best``
checkpoints are chosen by."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch


@torch.no_grad()
def held_out_losses(model: torch.nn.Module, raw_model: torch.nn.Module, batch_sets: Mapping[str, Sequence[dict]],
                    device: torch.device, autocast: Callable) -> dict[str, float]:
    """``{"val_loss/<domain>": mean loss, ..., "val_loss": mean over every domain's tokens}`` in nats per token.

    ``batch_sets``: domain → batches of int64 ``input_ids`` and ``labels`` [B, T] (labels already shifted, -100
    not counted; optional int32 ``doc_ids``). Each batch's mean loss from ``raw_model`` (the unwrapped model,
    under ``autocast()``) is weighed by its counted tokens. ``model`` (the wrapped one) is put in eval mode for
    the pass and back in train mode after. A domain without a counted token is left out."""
    model.eval()
    totals, counts = {}, {}
    try:
        for name, batches in batch_sets.items():
            loss_sum, n_tokens = 0.0, 0
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                n = int((batch["labels"] != -100).sum())
                with autocast():
                    loss = raw_model(batch["input_ids"], batch["labels"], doc_ids=batch.get("doc_ids"))
                loss_sum += float(loss) * n
                n_tokens += n
            totals[name], counts[name] = loss_sum, n_tokens
    finally:
        model.train()
    result = {f"val_loss/{k}": totals[k] / counts[k] for k in totals if counts[k]}
    if sum(counts.values()):
        result["val_loss"] = sum(totals.values()) / sum(counts.values())
    return result
