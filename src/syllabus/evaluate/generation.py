"""Text generation with the model's KV cache: greedy or sampled, stop strings, streaming, batches.

The prompt is run through the model once to fill the cache, then each new token costs one forward
pass of length 1. Every prompt starts with the one sequence start the tokenizer decides
(:func:`~syllabus.data.tokenizer.sequence_start_ids`: the end-of-text token, the document separator the model
trained with, which the exported tokenizer adds as BOS, so ``transformers`` generates from the same ids).
Prompts of different lengths share a batch left-padded: an attention mask keeps padding out of
attention and out of the positions, so each row decodes exactly as it would alone; each row stops at
its own stop string or end-of-text, and the batch ends when every row has. ``use_cache=False``
recomputes the whole sequence every step; it exists so tests can check that the cache changes nothing
(greedy decoding yields identical tokens either way).

Invariant kept by :func:`stream_text`: the pieces it yields, joined, equal the text
:func:`generate` returns for the same arguments — text is held back while it could still be the
start of a stop string or an incomplete UTF-8 character, and never yielded past a stop string.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from syllabus.model.attention import KVCache
from syllabus.model.transformer import Transformer

log = logging.getLogger("syllabus")


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen. ``temperature == 0`` means greedy (argmax)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))


def choose_next(logits: Tensor, sampling: Sampling, generator: torch.Generator | None) -> Tensor:
    """Next token ids [B] from last-position logits [B, V]."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already cover top_p; the first always stays.
        drop_sorted = probs.cumsum(dim=-1) - probs >= sampling.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_ids(model: Transformer, prompt_ids: Tensor, sampling: Sampling, *, eos_id: int | None = None,
                 use_cache: bool = True, attention_mask: Tensor | None = None,
                 finished: Callable[[], Sequence[bool]] | None = None) -> Iterator[Tensor]:
    """Yield the next token ids [B] for prompts [B, T], one step at a time.

    ``attention_mask`` (0/1 or bool [B, T]) marks real prompt tokens when rows are left-padded; None
    means no padding. Stops after ``max_new_tokens``, when every row has produced ``eos_id``, or when
    ``finished()`` (asked after each step) is true for every row; rows that produced ``eos_id`` keep
    yielding it. The prompt is cut from the left so prompt + new tokens fit the model, never silently: a
    warning says how many prompts lost how many tokens (tasks that can shorten a prompt better, by whole
    exemplars, do so before calling: ``gsm8k.fit_prompt``).
    """
    if sampling.max_new_tokens == 0:
        return
    limit = model.config.max_position_embeddings
    keep = max(1, limit - sampling.max_new_tokens)
    lengths = (attention_mask.sum(dim=1) if attention_mask is not None
               else torch.full((prompt_ids.shape[0],), prompt_ids.shape[1])).tolist()
    cut = [n - keep for n in lengths if n > keep]
    if cut:
        log.warning("generation: %d of %d prompts are longer than the %d tokens left for a prompt (context %d - "
                    "%d new tokens); they lose their first %d-%d tokens", len(cut), len(lengths), keep, limit,
                    sampling.max_new_tokens, min(cut), max(cut))
    device = next(model.parameters()).device
    ids = prompt_ids[:, -keep:].to(device)
    mask = None if attention_mask is None else attention_mask[:, -keep:].to(device).bool()
    steps = min(sampling.max_new_tokens, limit - ids.shape[1])
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(sampling.seed)
    was_training = model.training
    model.eval()
    try:
        cache = None
        if use_cache:  # buffers in the dtype k/v are computed in (not the parameters': FSDP2, autocast)
            cache = KVCache(model.config, ids.shape[0], ids.shape[1] + steps)
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        step_input = ids
        for _ in range(steps):
            logits = model(step_input, cache=cache, attention_mask=mask)[:, -1]
            token = choose_next(logits, sampling, generator)
            if eos_id is not None:
                token = torch.where(done, torch.full_like(token, eos_id), token)
                done |= token == eos_id
            yield token
            if eos_id is not None and bool(done.all()):
                return
            if finished is not None and all(finished()):
                return
            ids = torch.cat([ids, token[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step_input = token[:, None] if use_cache else ids
    finally:
        model.train(was_training)


def stop_index(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else None


def safe_length(text: str, stop: Sequence[str]) -> int:
    """How much of ``text`` can be shown now: hold back a partial UTF-8 character (decoded as
    U+FFFD at the end) and any suffix that could grow into a stop string."""
    end = len(text)
    while end > 0 and text[end - 1] == "\ufffd" and len(text) - end < 3:
        end -= 1
    for s in stop:
        for n in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:n]):
                end -= n
                break
    return end


def stream_text(model: Transformer, tokenizer, prompt: str, sampling: Sampling = Sampling(), *,
                eos_id: int | None = None, use_cache: bool = True) -> Iterator[str]:
    """Yield pieces of generated text as they are decided (see the module's invariant)."""
    eos_id = resolve_eos(tokenizer) if eos_id is None else eos_id
    prompt_ids = torch.tensor([encode_prompt(tokenizer, prompt)], dtype=torch.long)
    new_ids: list[int] = []
    shown = 0
    text = ""
    for token in generate_ids(model, prompt_ids, sampling, eos_id=eos_id, use_cache=use_cache):
        tok = int(token[0])
        if tok == eos_id:
            break
        new_ids.append(tok)
        text = tokenizer.decode(new_ids, skip_special_tokens=False)
        cut = stop_index(text, sampling.stop)
        if cut is not None:
            if cut > shown:
                yield text[shown:cut]
            return
        end = safe_length(text, sampling.stop)
        if end > shown:
            yield text[shown:end]
            shown = end
    if len(text) > shown:
        yield text[shown:]


def generate(model: Transformer, tokenizer, prompts: Sequence[str], sampling: Sampling = Sampling(), *,
             batch_size: int = 8, use_cache: bool = True) -> list[str]:
    """The completion of every prompt (stop string and EOS excluded), in order.

    Prompts are sorted by token count (little padding) and decoded ``batch_size`` at a time, left-padded
    with an attention mask (see the module docstring); a row's result does not depend on its batch.
    Sampled rows draw from one generator per batch, so with ``temperature > 0`` results depend on batching.
    """
    eos_id = resolve_eos(tokenizer)
    pad = pad_token_id(tokenizer, eos_id)
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    results: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        prompt_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, i in enumerate(chunk):
            prompt_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = True
        rows: list[list[int]] = [[] for _ in chunk]
        finished = [False] * len(chunk)
        for token in generate_ids(model, prompt_ids, sampling, eos_id=eos_id, use_cache=use_cache,
                                  attention_mask=None if bool(mask.all()) else mask, finished=lambda: finished):
            for r, tok in enumerate(token.tolist()):
                if finished[r]:
                    continue
                if tok == eos_id:
                    finished[r] = True
                    continue
                rows[r].append(tok)
                if sampling.stop:
                    # Only the tail can hold a new stop string: decode a short window.
                    tail = tokenizer.decode(rows[r][-16:], skip_special_tokens=False)
                    if stop_index(tail, sampling.stop) is not None:
                        finished[r] = True
        for r, i in enumerate(chunk):
            text = tokenizer.decode(rows[r], skip_special_tokens=False)
            cut = stop_index(text, sampling.stop)
            results[i] = text if cut is None else text[:cut]
    return results


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids (no special token added) after the sequence start the tokenizer decides
    (:func:`~syllabus.data.tokenizer.sequence_start_ids`: one BOS, whatever its post-processor adds)."""
    from syllabus.data.tokenizer import encode_text, sequence_start_ids

    return sequence_start_ids(tokenizer) + encode_text(tokenizer, prompt)


def pad_token_id(tokenizer, fallback: int | None) -> int:
    """``<|pad|>`` when the tokenizer has it, else ``fallback`` (the value is never attended to)."""
    pad = tokenizer.token_to_id("<|pad|>")
    return pad if pad is not None else (fallback or 0)


def resolve_eos(tokenizer) -> int | None:
    """The end-of-text id (the data package's rule), or None for a tokenizer without one."""
    from syllabus.config.errors import ConfigError
    from syllabus.data.tokenizer import eos_id

    try:
        return eos_id(tokenizer)
    except ConfigError:
        return None
