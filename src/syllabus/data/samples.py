"""Sample pre-training data in the layout the docs show (no download, deterministic).

``create_sample_pretraining_data(dir)`` writes::

    dir/arxiv/papers_001.jsonl  dir/arxiv/papers_002.jsonl     mathematical prose: definitions, lemmas, proofs
    dir/general/c4_001.jsonl    dir/general/c4_002.jsonl       general web-style prose

so that ``PreTrainingConfig(data_dir=dir, data_sources=["arxiv", "general"], data_mix_weights=[0.3, 0.7])``
(or ``syllabus pretrain --data-dir dir --data-sources arxiv general --data-mix-weights 0.3 0.7``) reads it as
written. Every record is ``{"text": ..., "id": ...}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_SUBJECTS = ["The river", "A small town", "The old library", "Our garden", "The night train", "A winter storm",
             "The museum", "An orchestra", "The harbour", "A mountain path", "The city council", "A local bakery"]
_VERBS = ["runs past", "looks over", "stands beside", "waits for", "remembers", "welcomes", "follows", "opens onto"]
_OBJECTS = ["the hills", "the sea", "a quiet square", "the market", "the first light", "a crowd of visitors",
            "the northern valley", "an empty station", "the new school", "a row of old houses"]
_CLAUSES = ["when the rain stops", "every autumn", "long after midnight", "as the bells ring",
            "while children play nearby", "before anyone notices", "during the summer festival"]
_OBJECTS_MATH = [("group", "G"), ("ring", "R"), ("vector space", "V"), ("metric space", "X"), ("graph", "\\Gamma")]
_PROPERTIES = ["finite", "compact", "connected", "abelian", "separable", "bounded"]


def _general(rng: random.Random) -> str:
    sentences = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_CLAUSES)}."
                 for _ in range(rng.randint(3, 9))]
    return " ".join(sentences)


def _math(rng: random.Random) -> str:
    kind, symbol = rng.choice(_OBJECTS_MATH)
    prop = rng.choice(_PROPERTIES)
    n, k = rng.randint(2, 40), rng.randint(2, 9)
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    return (f"Definition {k}.1. A {kind} ${symbol}$ is called {prop} if every cover of ${symbol}$ has a finite "
            f"subcover.\n\nLemma {k}.2. Let ${symbol}$ be a {prop} {kind} with $n = {n}$ elements. Then "
            f"$\\sum_{{i=1}}^{{n}} i = \\frac{{n(n+1)}}{{2}} = {n * (n + 1) // 2}$.\n\nProof. By induction on $n$: "
            f"the case $n = 1$ is clear, and adding $n + 1$ to both sides gives the claim. For instance "
            f"${a} + {b} = {a + b}$ and ${a} \\cdot {b} = {a * b}$. $\\square$")


def create_sample_pretraining_data(path: str | Path, *, docs_per_domain: int = 400, seed: int = 0,
                                   files_per_domain: int = 2) -> dict[str, str]:
    """Write the layout of the module docstring under ``path``; return ``{"arxiv": folder, "general": folder}``
    (ready as ``sources`` for :func:`syllabus.data.open_batches`). Side effect: creates the folders and
    overwrites those files."""
    out = Path(path)
    rng = random.Random(seed)
    paths = {}
    for name, stem, make in (("arxiv", "papers", _math), ("general", "c4", _general)):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        per_file = -(-docs_per_domain // files_per_domain)
        for f in range(files_per_domain):
            with open(folder / f"{stem}_{f + 1:03d}.jsonl", "w", encoding="utf-8") as handle:
                for i in range(f * per_file, min(docs_per_domain, (f + 1) * per_file)):
                    handle.write(json.dumps({"text": make(rng), "id": f"{name}-{i}"}) + "\n")
        paths[name] = str(folder)
    return paths
