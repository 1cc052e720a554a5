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

    Memory: the [B, T, V] logits stay on the model's device; per batch only each position's target log-prob
    (fp32, ``logit[target] - logsumexp(logits)`` with the log-sum-exp taken one row at a time in fp32) and
    whether the target is the argmax, both [B, T], come to the host.
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
            targets = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, i in enumerate(chunk):
                tokens = encoded[i][0]
                inputs[row, :len(tokens) - 1] = torch.tensor(tokens[:-1])
                targets[row, :len(tokens) - 1] = torch.tensor(tokens[1:])
            target_logprobs, greedy = target_scores(model(inputs.to(device)), targets.to(device))
            target_logprobs, greedy = target_logprobs.cpu(), greedy.cpu()
            for row, i in enumerate(chunk):
                tokens, n_cont = encoded[i]
                end = len(tokens) - 1
                results[i] = (float(target_logprobs[row, end - n_cont:end].sum()),
                              bool(greedy[row, end - n_cont:end].all()))
    finally:
        model.train(was_training)
    return results


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target and whether it is the argmax: fp32 [B, T] and bool [B, T], on the logits'
    device, from ``logits`` [B, T, V] (any float dtype) and int64 ``targets`` [B, T]. The log-sum-exp is taken
    one row at a time, so the only [B, T, V] tensor is ``logits`` itself (no fp32 copy, no log-softmax)."""
    picked = logits.gather(-1, targets[..., None]).squeeze(-1).float()
    lse = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
    return picked - lse, logits.argmax(-1) == targets
