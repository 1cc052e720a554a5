"""GSM8K: few-shot chain-of-thought generation, answer extraction, exact match.

Prompts use the standard 8 chain-of-thought exemplars ("Question: …\\nAnswer: … So the answer is N.")
shipped with the published requests; generation is greedy and stops at the next "Question:" or a blank
line. The reference answer is the number after ``####`` in the published solution.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import syllabus.evaluate.benchmark_files as benchmark_files
from syllabus.evaluate.generation import Sampling, generate
from syllabus.model.transformer import Transformer

# An optional minus sign (ASCII or Unicode), an optional dollar sign, digits with optional thousands
# commas, an optional decimal part.
NUMBER = re.compile(r"[-−]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-−]?\$?\.\d+")
STOP = ("Question:", "\n\n")


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str  # canonical number, e.g. "2125" or "-3"


def canonical_number(text: str) -> str | None:
    """"$1,234.50" -> "1234.5", "-10" -> "-10", "18.00" -> "18"; None when not a number."""
    cleaned = re.sub(r"[\s,$]", "", text).replace("−", "-").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_answer(text: str) -> str | None:
    """The final numeric answer in a solution: after ``####`` if present, else after
    "the answer is", else the last number in the text."""
    for marker in ("####", "the answer is"):
        at = text.lower().rfind(marker)
        if at >= 0:
            match = NUMBER.search(text, at + len(marker))
            if match:
                number = match.group()
                if text[at + len(marker):match.start()].strip().endswith(("-", "−")) and number[0] not in "-−":
                    number = "-" + number  # "the answer is - 10"
                return canonical_number(number)
    numbers = NUMBER.findall(text)
    return canonical_number(numbers[-1]) if numbers else None


def exemplars() -> list[str]:
    """The published chain-of-thought exemplars, each "Question: …\\nAnswer: …"."""
    context = benchmark_files.gsm8k_requests()[0]["request"]["context"]
    return [block for block in context.split("\n\n")[:-1] if block.startswith("Question:")]


def prompt_for(question: str, shots: int = 8) -> str:
    return "".join(e + "\n\n" for e in exemplars()[:shots]) + f"Question: {question}\nAnswer:"


def problems(limit: int | None = None) -> list[Problem]:
    result = []
    for record in benchmark_files.gsm8k_requests()[:limit]:
        doc = record["doc"]
        result.append(Problem(doc["question"], extract_answer(doc["answer"]) or ""))
    return result


def evaluate_gsm8k(model: Transformer, tokenizer, *, limit: int | None = None, shots: int = 8,
                   max_new_tokens: int = 256) -> dict[str, float]:
    """``{"exact_match", "n"}`` with greedy decoding."""
    items = problems(limit)
    if not items:
        return {"exact_match": math.nan, "n": 0.0}
    completions = generate(model, tokenizer, [prompt_for(p.question, shots) for p in items],
                           Sampling(max_new_tokens=max_new_tokens, stop=STOP))
    correct = sum(extract_answer(c) == p.answer for c, p in zip(completions, items))
    return {"exact_match": correct / len(items), "n": float(len(items))}
