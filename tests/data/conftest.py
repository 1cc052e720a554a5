"""Shared fixtures: a small tokenizer trained on real text, and JSONL corpora written per test."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import syllabus.data.installed as installed
from syllabus.data import train_tokenizer


def package_dir(name: str) -> Path:
    folder = installed.package_dir(name)
    assert folder is not None, f"{name} is not installed"
    return folder


@pytest.fixture(scope="session")
def real_text() -> str:
    """News paragraphs from gensim's test data (the Lee corpus), read as a plain file."""
    return (package_dir("gensim") / "test" / "test_data" / "lee_background.cor").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tok(real_text):
    lines = [line for line in real_text.splitlines() if line.strip()]
    extra = [f"{a} + {b} = {a + b}" for a, b in zip(range(100, 400, 7), range(900, 300, -13))]
    return train_tokenizer(lines + extra, 512)


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({field: t}) + "\n")
    return path


def make_docs(real_text: str, n: int, seed: int, tag: str) -> list[str]:
    """``n`` varied documents: slices of real paragraphs, each tagged so sources differ."""
    paras = [p for p in real_text.splitlines() if p.strip()]
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        p = rng.choice(paras)
        start = rng.randrange(0, max(1, len(p) - 50))
        docs.append(f"[{tag} {i}] " + p[start: start + rng.randint(30, 600)])
    return docs


@pytest.fixture
def three_sources(tmp_path, real_text) -> dict[str, str]:
    """Three raw JSONL sources of different sizes (one spread over two files)."""
    paths = {}
    for name, n in (("wiki", 300), ("math", 150), ("code", 25)):
        folder = tmp_path / "raw" / name
        docs = make_docs(real_text, n, seed=len(name), tag=name)
        if name == "wiki":
            write_jsonl(folder / "a.jsonl", docs[:150])
            write_jsonl(folder / "b.jsonl", docs[150:])
        else:
            write_jsonl(folder / "part.jsonl", docs)
        paths[name] = str(folder)
    return paths
