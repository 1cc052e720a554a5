"""Shared fixtures: a small corpus of real text (the Python standard library's own source) and a tokenizer."""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path

import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS_PACKAGES = ["json", "email", "http", "logging", "importlib", "concurrent", "xml/dom", "urllib", "asyncio"]

# A model small enough for a CPU test to take seconds; every field is a real PreTrainingConfig field.
TINY_FLAGS = ["--set", "model.hidden_size=64", "--set", "model.num_hidden_layers=2",
              "--set", "model.num_attention_heads=2", "--set", "model.intermediate_size=192"]


# Matmul peaks and kernel choices are cached per machine (``train/peaks.py``, ``train/calibration.py``): the
# suite measures into its own empty cache folder, never reading (or writing) one a previous run left in the
# user's cache. Set on import of this file, before any other conftest, so environments copied at import
# (``tests/faults/harness.ENV``) hand it to the runs they start too. The folder is no older than the suite, so
# no figure in it is ever old enough to be measured again (``calibration.REMEASURE_AFTER_S``): every run of a
# test reads the same choice.
_previous_cache = os.environ.get("SYLLABUS_CACHE_DIR")
os.environ["SYLLABUS_CACHE_DIR"] = tempfile.mkdtemp(prefix="syllabus-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.get("SYLLABUS_CACHE_DIR", ""), ignore_errors=True)
    if _previous_cache is None:
        os.environ.pop("SYLLABUS_CACHE_DIR", None)
    else:
        os.environ["SYLLABUS_CACHE_DIR"] = _previous_cache


def stdlib_documents(limit_bytes: int) -> list[str]:
    docs, used = [], 0
    for package in CORPUS_PACKAGES:
        for path in sorted((STDLIB / package).glob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            if used + len(text) > limit_bytes:
                return docs
            docs.append(text)
            used += len(text)
    return docs


@pytest.fixture(scope="session")
def code_corpus(tmp_path_factory) -> Path:
    """A folder with ``train.jsonl`` (~1.2 MB of stdlib source) and ``val.jsonl`` (a held-out few files)."""
    folder = tmp_path_factory.mktemp("code_corpus")
    docs = stdlib_documents(1_400_000)
    val, train = docs[::12], [d for i, d in enumerate(docs) if i % 12]
    for name, split in (("train.jsonl", train), ("val.jsonl", val)):
        with open(folder / name, "w") as f:
            for text in split:
                f.write(json.dumps({"text": text}) + "\n")
    return folder


@pytest.fixture(scope="session")
def code_tokenizer(code_corpus, tmp_path_factory) -> Path:
    from syllabus.data import save_tokenizer, train_tokenizer

    texts = [json.loads(line)["text"] for line in open(code_corpus / "train.jsonl")]
    return save_tokenizer(train_tokenizer(texts, 1024), tmp_path_factory.mktemp("tok") / "tokenizer.json")
