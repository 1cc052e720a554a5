"""Plans on the real demo corpus, shrunk: a tiny model and a few steps per stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from syllabus.data.corpus import demo_sources

TINY_MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 192}


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    from syllabus.data.corpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo_corpus")
    build_demo_corpus(out, cap_chars=400_000, echo=lambda *a, **k: None)
    return out


@pytest.fixture(scope="session")
def demo_tokenizer(demo_corpus, tmp_path_factory) -> Path:
    from syllabus.data import save_tokenizer, train_tokenizer
    from syllabus.data.corpus import demo_sources
    from syllabus.data.tokenizer import training_sample

    texts = training_sample(list(demo_sources(demo_corpus).values()), 1_500_000)
    return save_tokenizer(train_tokenizer(texts, 1024), tmp_path_factory.mktemp("plan_tok") / "tokenizer.json")


def make_plan(corpus: Path, tokenizer: Path, stages: list[dict], **extra) -> dict:
    plan = {
        "name": "test-plan",
        "sources": demo_sources(corpus),
        "model": {"size": "tiny", "overrides": TINY_MODEL},
        "tokenizer": {"path": str(tokenizer)},
        "defaults": {"micro_batch_size": 4, "max_seq_length": 64, "mixed_precision": "fp32", "log_interval": 1,
                     "save_interval": 5},
        "stages": stages,
        "evaluation": {"every": 5, "perplexity": ["wiki", "code"], "batches": 2},
    }
    plan.update(extra)
    return plan


def write_plan(folder: Path, plan: dict) -> Path:
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def run_argv(plan_path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syllabus", "run", str(plan_path), "--out", str(out), *extra]


def records(run_dir: Path, **match) -> list[dict]:
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def losses(run_dir: Path) -> dict[tuple[str, int], float]:
    """(stage, step) -> the last logged loss (resumed runs log steps after their checkpoint again)."""
    return {(r["stage"], r["step"]): r["loss"] for r in records(run_dir) if "loss" in r}
