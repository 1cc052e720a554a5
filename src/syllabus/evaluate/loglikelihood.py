"""Log-likelihood of a continuation given a context: the primitive behind multiple-choice scoring.

Tokenization follows lm-evaluation-harness: the pair is encoded as a whole and the continuation's
tokens are those past the context's own encoding, with trailing spaces of the context moved onto the
continuation (so "Answer:" + " B" is scored the way the model saw such text in training). Every
sequence starts with the end-of-text token, the document separator the model was trained with.
Sequences too long for the model lose tokens from the left of the context.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from syllabus.evaluate.generation import resolve_eos
from syllabus.model.transformer import Transformer


def split_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) as described in the module docstring."""
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    whole = tokenizer.encode(stripped + continuation).ids
    context_ids = tokenizer.encode(stripped).ids if stripped else []
    n = len(context_ids)
    # BPE may merge across the boundary; then fall back to encoding the two sides separately.
    if whole[:n] != context_ids or n == len(whole):
        return context_ids, tokenizer.encode(continuation).ids
    return context_ids, whole[n:]


@torch.no_grad()
def loglikelihoods(model: Transformer, tokenizer, requests: Sequence[tuple[str, str]], *,
                   batch_size: int = 16) -> list[tuple[float, bool]]:
    """For each (context, continuation): (sum of continuation token log-probs, greedy match).

    ``greedy match`` is True when every continuation token is the model's argmax. Requests are
    sorted by length and padded on the right within a batch; results come back in request order.
    """
    eos = resolve_eos(tokenizer)
    prefix = [eos] if eos is not None else []
    max_len = model.config.max_position_embeddings + 1  # input is all but the last token
    encoded = []
    for context, continuation in requests:
        ctx, cont = split_tokens(tokenizer, context, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context {context[-40:]!r}")
        tokens = (prefix + ctx + cont)[-max_len:]
        encoded.append((tokens, len(cont)))
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i][0]) for i in chunk) - 1
            inputs = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, i in enumerate(chunk):
                tokens = encoded[i][0][:-1]
                inputs[row, :len(tokens)] = torch.tensor(tokens)
            logprobs = F.log_softmax(model(inputs.to(device)).float(), dim=-1).cpu()
            for row, i in enumerate(chunk):
                tokens, n_cont = encoded[i]
                end = len(tokens) - 1
                targets = torch.tensor(tokens[-n_cont:])
                lp = logprobs[row, end - n_cont:end]
                score = float(lp.gather(-1, targets[:, None]).sum())
                results[i] = (score, bool((lp.argmax(-1) == targets).all()))
    finally:
        model.train(was_training)
    return results
