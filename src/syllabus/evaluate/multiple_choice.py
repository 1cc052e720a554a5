"""Multiple choice by log-likelihood: HellaSwag, ARC, MMLU in lm-evaluation-harness's prompt formats.

An item is a context and several continuations; the model's answer is the continuation with the
highest summed log-probability (``acc``) or the highest log-probability per character of the
continuation without its joining space (``acc_norm``: lm-evaluation-harness divides by the length of the
choice text, the target delimiter not counted). k-shot prompts put
k solved items (never the item itself) before the question, separated by a blank line.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Sequence

import syllabus.evaluate.benchmark_files as benchmark_files
from syllabus.evaluate.loglikelihood import loglikelihoods
from syllabus.model.transformer import Transformer


@dataclass(frozen=True)
class ChoiceItem:
    context: str
    choices: tuple[str, ...]  # continuations, each starting with the space that joins it to the context
    answer: int


def score_choices(model: Transformer, tokenizer, items: Sequence[ChoiceItem], *,
                  batch_size: int = 16) -> dict[str, float]:
    """``{"acc", "acc_norm", "n"}`` over ``items`` (NaN accuracies when there are none); ties go to the
    first choice, as numpy's argmax in lm-evaluation-harness."""
    requests = [(item.context, choice) for item in items for choice in item.choices]
    scores = [s for s, _ in loglikelihoods(model, tokenizer, requests, batch_size=batch_size)]
    correct = correct_norm = 0
    at = 0
    for item in items:
        item_scores = scores[at:at + len(item.choices)]
        at += len(item.choices)
        normed = [s / max(1, len(c) - c.startswith(" ")) for s, c in zip(item_scores, item.choices)]
        correct += argmax(item_scores) == item.answer
        correct_norm += argmax(normed) == item.answer
    n = len(items)
    if n == 0:
        return {"acc": math.nan, "acc_norm": math.nan, "n": 0.0}
    return {"acc": correct / n, "acc_norm": correct_norm / n, "n": float(n)}


def argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def with_shots(prompt: str, shots: Sequence[str], header: str = "") -> str:
    return header + "".join(shot + "\n\n" for shot in shots) + prompt


def pick_shots(rows: Sequence, index: int, k: int, seed: int) -> list:
    """k rows other than ``rows[index]``, the same every run."""
    if k == 0:
        return []
    rng = random.Random(seed * 1_000_003 + index)
    others = [i for i in rng.sample(range(len(rows)), min(len(rows), k + 1)) if i != index][:k]
    return [rows[i] for i in others]


# --- HellaSwag ---------------------------------------------------------------------------------------

def hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_parts(row: dict) -> tuple[str, list[str], int]:
    context = hellaswag_clean(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}")
    return context, [" " + hellaswag_clean(e) for e in row["endings"]], int(row["label"])


def hellaswag_items(limit: int | None = None, shots: int = 0, seed: int = 1234) -> list[ChoiceItem]:
    rows = benchmark_files.hellaswag_rows()
    items = []
    for index, row in enumerate(rows[:limit]):
        context, choices, answer = hellaswag_parts(row)
        examples = []
        for shot in pick_shots(rows, index, shots, seed):
            c, ch, a = hellaswag_parts(shot)
            examples.append(c + ch[a])
        items.append(ChoiceItem(with_shots(context, examples), tuple(choices), answer))
    return items


# --- ARC ---------------------------------------------------------------------------------------------

def arc_parts(row: dict) -> tuple[str, list[str], int]:
    labels = list(row["choices"]["label"])
    return (f"Question: {row['question']}\nAnswer:", [" " + t for t in row["choices"]["text"]],
            labels.index(row["answerKey"]))


def arc_items(limit: int | None = None, shots: int = 0, subset: str = "ARC-Easy", seed: int = 1234) -> list[ChoiceItem]:
    rows = benchmark_files.arc_rows(subset)
    items = []
    for index, row in enumerate(rows[:limit]):
        context, choices, answer = arc_parts(row)
        examples = [c + ch[a] for c, ch, a in map(arc_parts, pick_shots(rows, index, shots, seed))]
        items.append(ChoiceItem(with_shots(context, examples), tuple(choices), answer))
    return items


# --- MMLU --------------------------------------------------------------------------------------------

LETTERS = ("A", "B", "C", "D")


def mmlu_question(row: dict) -> str:
    options = "".join(f"\n{letter}. {text}" for letter, text in zip(LETTERS, row["choices"]))
    return f"{row['question'].strip()}{options}\nAnswer:"


def mmlu_items(limit: int | None = None, shots: int = 5, subjects: Sequence[str] | None = None) -> list[ChoiceItem]:
    """Test items spread evenly over subjects; shots come from each subject's ``dev`` split."""
    subjects = list(subjects or benchmark_files.mmlu_subjects())
    per_subject = None if limit is None else max(1, math.ceil(limit / len(subjects)))
    items: list[ChoiceItem] = []
    for subject in subjects:
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        examples = [f"{mmlu_question(r)} {LETTERS[r['answer']]}" for r in benchmark_files.mmlu_rows(subject, "dev")[:shots]]
        for row in benchmark_files.mmlu_rows(subject, "test")[:per_subject]:
            items.append(ChoiceItem(with_shots(mmlu_question(row), examples, header),
                                    tuple(" " + letter for letter in LETTERS), int(row["answer"])))
    return items[:limit]
