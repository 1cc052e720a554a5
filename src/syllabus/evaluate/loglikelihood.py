"""Log-likelihood of a continuation given a context: the primitive behind multiple-choice scoring.

Tokenization is lm-evaluation-harness's (``LM._encode_pair``), token for token: trailing whitespace of
the context moves onto the continuation (so "Answer:" + " B" is scored the way the model saw such text in
training), the pair is encoded as a whole and the continuation's tokens are those past the context's own
encoding. Text is encoded without special tokens and every sequence starts with the ids
:func:`~syllabus.data.tokenizer.sequence_start_ids` decides once, from the tokenizer (the end-of-text token,
the document separator the model was trained with, for syllabus's tokenizers and its Hugging Face export,
which adds that token as its BOS; a Llama tokenizer's ``<s>``), so there is exactly one BOS and a
continuation's count never includes it (docs/lm-eval.md). Sequences too long for the model lose tokens from
the left of the context.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from syllabus.data.tokenizer import encode_text, sequence_start_ids
from syllabus.model.transformer import Transformer


def split_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) as described in the module docstring."""
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    whole = encode_text(tokenizer, stripped + continuation)
    context_ids = encode_text(tokenizer, stripped) if stripped else []
    return context_ids, whole[len(context_ids):]


def loglikelihoods(model: Transformer, tokenizer, requests: Sequence[tuple[str, str]], *,
                   batch_size: int = 16) -> list[tuple[float, bool]]:
    """For each (context, continuation): (sum of continuation token log-probs in nats, greedy match).

    ``greedy match`` is True when every continuation token is the model's argmax.
    """
    prefix = sequence_start_ids(tokenizer)
    encoded = []
    for context, continuation in requests:
        ctx, cont = split_tokens(tokenizer, context, continuation)
        if not cont:
            raise ValueError(f"empty continuation for context {context[-40:]!r}")
        encoded.append((prefix + ctx + cont, len(cont)))
    return score_tokens(model, encoded, batch_size=batch_size)


@torch.no_grad()
def score_tokens(model: Transformer, encoded: Sequence[tuple[list[int], int]], *,
                 batch_size: int = 16) -> list[tuple[float, bool]]:
    """For each (token ids, n): (sum of the log-probs of the last n tokens given the ones before, greedy match).

    Sequences longer than the model's context + 1 lose tokens from the left. Requests are sorted by
    length and padded on the right within a batch (causal attention: padding after a row changes nothing
    in it); results come back in request order. The model is put in eval mode and its flag restored.
    """
    max_len = model.config.max_position_embeddings + 1  # input is all but the last token
    encoded = [(list(tokens)[-max_len:], n) for tokens, n in encoded]
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
