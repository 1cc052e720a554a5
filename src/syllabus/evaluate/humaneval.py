"""HumanEval: complete a function from its signature and docstring, run the problem's tests in the
sandbox, report pass@k with the unbiased estimator of Chen et al. (2021).

A completion ends where the function body ends: at the first line that starts a new top-level
statement (the Codex paper's stop sequences).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

import syllabus.evaluate.benchmark_files as benchmark_files
from syllabus.evaluate.generation import Sampling, generate
from syllabus.evaluate.sandbox import Limits, run_python
from syllabus.model.transformer import Transformer

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def program_for(problem: dict, completion: str) -> str:
    """The script the sandbox runs: prompt + completion, the tests, and the call that checks."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def check_completions(problem: dict, completions: Sequence[str], limits: Limits = Limits(),
                      workers: int = 2) -> list[bool]:
    """Whether each completion passes the problem's tests."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(lambda c: run_python(program_for(problem, c), limits), completions)
        return [o.passed for o in outcomes]


def evaluate_humaneval(model: Transformer, tokenizer, *, limit: int | None = None, samples: int = 1,
                       temperature: float = 0.0, ks: Sequence[int] = (1,), max_new_tokens: int = 256,
                       limits: Limits = Limits(timeout=5.0), seed: int = 0) -> dict[str, float]:
    """``{"pass@k" for k in ks (k <= samples), "n"}``; greedy when temperature is 0 (then 1 sample, and all
    prompts are decoded together in left-padded batches of 8)."""
    problems = benchmark_files.humaneval_problems()[:limit]
    if temperature == 0:
        samples = 1
    totals = {k: 0.0 for k in ks if k <= samples}
    greedy = []
    if temperature == 0:  # one batched, left-padded pass over every prompt
        greedy = generate(model, tokenizer, [p["prompt"] for p in problems],
                          Sampling(max_new_tokens=max_new_tokens, stop=STOP), batch_size=8)
    for index, problem in enumerate(problems):
        completions = [greedy[index]] if greedy else []
        for s in range(samples if not greedy else 0):
            sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, stop=STOP,
                                seed=seed + index * samples + s)
            completions += generate(model, tokenizer, [problem["prompt"]], sampling)
        passed = sum(check_completions(problem, completions, limits))
        for k in totals:
            totals[k] += pass_at_k(samples, passed, k)
    n = len(problems)
    result = {f"pass@{k}": (total / n if n else math.nan) for k, total in totals.items()}
    result["n"] = float(n)
    return result
