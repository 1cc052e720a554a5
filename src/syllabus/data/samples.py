"""A tiny synthetic mixed math/general JSONL set for smoke tests (no download, deterministic)."""

from __future__ import annotations

import json
import random
from pathlib import Path

_SUBJECTS = ["The river", "A small town", "The old library", "Our garden", "The night train", "A winter storm",
             "The museum", "An orchestra", "The harbour", "A mountain path"]
_VERBS = ["runs past", "looks over", "stands beside", "waits for", "remembers", "welcomes", "follows"]
_OBJECTS = ["the hills", "the sea", "a quiet square", "the market", "the first light", "a crowd of visitors",
            "the northern valley", "an empty station"]
_CLAUSES = ["when the rain stops", "every autumn", "long after midnight", "as the bells ring",
            "while children play nearby", "before anyone notices"]


def _general(rng: random.Random) -> str:
    sentences = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_CLAUSES)}."
                 for _ in range(rng.randint(3, 9))]
    return " ".join(sentences)


def _math(rng: random.Random) -> str:
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    op = rng.choice(["+", "-", "*"])
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    steps = f"Compute {a} {op} {b}.\nWe work digit by digit.\n{a} {op} {b} = {result}.\nThe answer is {result}."
    if rng.random() < 0.5:
        n = rng.randint(2, 12)
        steps += f"\nCheck: {result} + {n} - {n} = {result}."
    return steps


def create_sample_pretraining_data(path: str | Path, *, docs_per_domain: int = 400, seed: int = 0) -> dict[str, str]:
    """Write ``path/math.jsonl`` and ``path/general.jsonl``; return ``{"math": ..., "general": ...}``
    (ready to pass as ``sources`` to :func:`syllabus.data.open_batches`)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = {}
    for name, make in (("math", _math), ("general", _general)):
        file = out / f"{name}.jsonl"
        with open(file, "w", encoding="utf-8") as f:
            for i in range(docs_per_domain):
                f.write(json.dumps({"text": make(rng), "id": f"{name}-{i}"}) + "\n")
        paths[name] = str(file)
    return paths
