"""GSM8K: few-shot chain-of-thought generation, answer extraction, exact match.

Prompts use the standard 8 chain-of-thought exemplars ("Question: …\\nAnswer: … So the answer is N.")
shipped with the published requests (``shots`` of them, 8 by default); generation is greedy and stops at the
next "Question:" or a blank line. The reference answer is the number after ``####`` in the solution. The items
are the published test set, or a user's own GSM8K-format JSONL file (``question``, ``answer`` ending in
``#### N``) named as the task's ``items``.

A prompt is never cut: generation keeps at most ``context - max_new_tokens`` prompt tokens, so a prompt
longer than that loses whole exemplars, last first, until it fits (:func:`fit_prompt`); the prompts shortened
and the exemplars dropped are counted (``shortened_n``, ``dropped_shots_n``) and logged once. A question too
long to fit even with no exemplar is not scored: counted as ``too_long_n`` and logged, never cut.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import syllabus.evaluate.benchmark_files as benchmark_files
from syllabus.config.errors import ConfigError
from syllabus.evaluate.generation import Sampling, encode_prompt, generate
from syllabus.model.transformer import Transformer

log = logging.getLogger("syllabus")

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


def fit_prompt(tokenizer, question: str, shots: int, room: int) -> tuple[str, int] | None:
    """The prompt with the most exemplars (at most ``shots``) whose tokens (sequence start included, as
    generation encodes it) fit in ``room``, and the number of exemplars it holds; ``None`` when the question
    does not fit even alone. Exemplars are dropped whole, the last first; a prompt is never cut."""
    for used in range(min(shots, len(exemplars())), -1, -1):
        prompt = prompt_for(question, used)
        if len(encode_prompt(tokenizer, prompt)) <= room:
            return prompt, used
    return None


def problems(limit: int | None = None, items: str | Path | None = None) -> list[Problem]:
    """The first ``limit`` problems of the published test set, or of ``items``: a GSM8K-format JSONL file
    (``question`` and ``answer`` ending in ``#### N`` per line). Raises ``ConfigError`` naming the file and line
    for one that cannot be read that way."""
    if items is None:
        docs = [record["doc"] for record in benchmark_files.gsm8k_requests()[:limit]]
    else:
        docs = _read_items(Path(items), limit)
    return [Problem(doc["question"], extract_answer(doc["answer"]) or "") for doc in docs]


def _read_items(path: Path, limit: int | None) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"gsm8k items: file not found: {path}")
    docs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                doc = None
            if not (isinstance(doc, dict) and isinstance(doc.get("question"), str)
                    and isinstance(doc.get("answer"), str)):
                raise ConfigError(f"gsm8k items: {path} line {number} is not a JSON object with string fields "
                                  f"question and answer (GSM8K's format: the answer ends in '#### N')")
            docs.append(doc)
            if limit is not None and len(docs) >= limit:
                break
    return docs


def evaluate_gsm8k(model: Transformer, tokenizer, *, limit: int | None = None, shots: int = 8,
                   max_new_tokens: int = 256, items: str | Path | None = None) -> dict[str, float]:
    """``{"exact_match", "n", "shots_n", "shortened_n", "dropped_shots_n", "too_long_n"}`` with greedy decoding:
    ``n`` problems scored, ``shots_n`` the exemplars asked for, and the prompts shortened by whole exemplars to
    fit ``context - max_new_tokens`` (see the module docstring)."""
    chosen = problems(limit, items)
    room = model.config.max_position_embeddings - max_new_tokens
    fitted = [(p, fit_prompt(tokenizer, p.question, shots, room)) for p in chosen]
    too_long = sum(fit is None for _, fit in fitted)
    fitted = [(p, fit) for p, fit in fitted if fit is not None]
    dropped = [min(shots, len(exemplars())) - used for _, (_, used) in fitted]
    counts = {"shots_n": float(shots), "shortened_n": float(sum(d > 0 for d in dropped)),
              "dropped_shots_n": float(sum(dropped)), "too_long_n": float(too_long)}
    if counts["shortened_n"] or too_long:
        log.warning("gsm8k: %d of %d prompts did not fit the %d tokens left for a prompt (context %d - %d new "
                    "tokens): %d lost whole exemplars (%d dropped in all, %d-shot asked), %d too long even with "
                    "none were not scored", counts["shortened_n"] + too_long, len(chosen), room,
                    model.config.max_position_embeddings, max_new_tokens, counts["shortened_n"],
                    counts["dropped_shots_n"], shots, too_long)
    if not fitted:
        return {"exact_match": math.nan, "n": 0.0, **counts}
    completions = generate(model, tokenizer, [prompt for _, (prompt, _) in fitted],
                           Sampling(max_new_tokens=max_new_tokens, stop=STOP))
    correct = sum(extract_answer(c) == p.answer for c, (p, _) in zip(completions, fitted))
    return {"exact_match": correct / len(fitted), "n": float(len(fitted)), **counts}
