"""An arithmetic probe: "342 + 567 =" with greedy decoding, accuracy by number of digits.

Problems are made here from a seeded generator, so the probe needs no data and is the same every run.
Operands of ``d`` digits have exactly ``d`` digits; subtraction keeps the result non-negative.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

from syllabus.evaluate.generation import Sampling, generate
from syllabus.model.transformer import Transformer


@dataclass(frozen=True)
class ArithmeticProblem:
    prompt: str
    answer: str
    digits: int


def arithmetic_problems(per_digits: int = 20, digits: Sequence[int] = (1, 2, 3, 4),
                        operations: str = "+-", seed: int = 0) -> list[ArithmeticProblem]:
    rng = random.Random(seed)
    problems = []
    for d in digits:
        low, high = (0 if d == 1 else 10 ** (d - 1)), 10 ** d - 1
        for _ in range(per_digits):
            a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(operations)
            if op == "-" and b > a:
                a, b = b, a
            value = a + b if op == "+" else a - b
            problems.append(ArithmeticProblem(f"{a} {op} {b} =", str(value), d))
    return problems


def first_integer(text: str) -> str | None:
    match = re.search(r"-?\d+", text)
    return match.group() if match else None


def evaluate_arithmetic(model: Transformer, tokenizer, *, limit: int | None = None,
                        digits: Sequence[int] = (1, 2, 3, 4), seed: int = 0) -> dict[str, float]:
    """``{"acc", "acc_<d>digit" and "acc_<d>digit_n" for each d, "n"}``; ``limit`` caps the problems in all
    (spread evenly over the digit counts)."""
    per_digits = 20 if limit is None else max(1, limit // len(digits))
    problems = arithmetic_problems(per_digits, digits, seed=seed)
    completions = generate(model, tokenizer, [p.prompt for p in problems],
                           Sampling(max_new_tokens=max(digits) + 3, stop=("\n",)), batch_size=32)
    right = [first_integer(c) == p.answer for c, p in zip(completions, problems)]
    result = {"acc": sum(right) / len(right)}
    for d in digits:
        hits = [r for r, p in zip(right, problems) if p.digits == d]
        result[f"acc_{d}digit"] = sum(hits) / len(hits)
        result[f"acc_{d}digit_n"] = float(len(hits))
    result["n"] = float(len(problems))
    return result
