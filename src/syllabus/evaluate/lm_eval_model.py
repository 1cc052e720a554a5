"""lm-evaluation-harness's ``LM`` interface over a syllabus model in this process (no export, no copy).

lm-eval builds the requests from its own task definitions; this class answers them with syllabus's
scorer and generator, so every lm-eval task can run on a model between or inside stages:

- ``loglikelihood``: :func:`syllabus.evaluate.loglikelihood.loglikelihoods` — lm-eval's tokenization
  of the pair, with the end-of-text token in front (what lm-eval's ``hf`` model does on the export, whose
  tokenizer adds that token as BOS);
- ``loglikelihood_rolling``: lm-eval's own rolling windows (``get_rolling_token_windows``, prefix = the
  tokenizer's sequence start, ``sequence_start_ids``; text encoded without special tokens, so one BOS),
  each scored by :func:`score_tokens`;
- ``generate_until``: :func:`syllabus.evaluate.generation.generate` (batched, KV cache, greedy unless
  ``do_sample``), stopping at each request's ``until`` strings or end-of-text.

Importing this module imports ``lm_eval`` (a few seconds); nothing else in ``syllabus.evaluate`` does.
"""

from __future__ import annotations

from lm_eval.api.model import LM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from syllabus.data.tokenizer import encode_text, sequence_start_ids
from syllabus.evaluate.generation import Sampling, generate, resolve_eos
from syllabus.evaluate.loglikelihood import loglikelihoods, score_tokens
from syllabus.model.transformer import Transformer


class SyllabusLM(LM):
    """``SyllabusLM(model, tokenizer)`` is an lm-eval model: pass it as ``simple_evaluate(model=...)``.

    ``model`` stays on its device; each call puts it in eval mode and restores its training flag.
    ``batch_size`` applies to scoring and generation alike; ``max_gen_toks`` is the default length of a
    generation when a request does not give one.
    """

    def __init__(self, model: Transformer, tokenizer, *, batch_size: int = 16, max_gen_toks: int = 256):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_gen_toks = batch_size, max_gen_toks

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return loglikelihoods(self.model, self.tokenizer, [tuple(r.args) for r in requests],
                              batch_size=self.batch_size)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        start = sequence_start_ids(self.tokenizer)  # one BOS: the rolling windows' prefix token
        prefix = start[-1] if start else resolve_eos(self.tokenizer)
        context = self.model.config.max_position_embeddings
        totals = []
        for request in requests:
            tokens = encode_text(self.tokenizer, request.args[0])
            windows = [make_disjoint_window(w) for w in
                       get_rolling_token_windows(tokens, prefix_token=prefix, max_seq_len=context, context_len=1)]
            scores = score_tokens(self.model, [(ctx + cont, len(cont)) for ctx, cont in windows],
                                  batch_size=self.batch_size)
            totals.append(sum(score for score, _ in scores))
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            kwargs = dict(request.args[1])
            until = kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            key = (until, int(kwargs.get("max_gen_toks", self.max_gen_toks)), temperature)
            groups.setdefault(key, []).append(i)
        results = [""] * len(requests)
        for (until, max_new, temperature), indices in groups.items():
            sampling = Sampling(max_new_tokens=max_new, temperature=temperature, stop=until,
                                seed=0 if temperature else None)
            texts = generate(self.model, self.tokenizer, [requests[i].args[0] for i in indices], sampling,
                             batch_size=self.batch_size)
            for i, text in zip(indices, texts):
                results[i] = text
        return results
