"""Field reports rebuilt as small plans (issue 26): chat roles that real datasets use, a source too small for
its held-out split, merges with nothing to choose by."""

import json
import math

import pytest

from syllabus.config.errors import ConfigError
from syllabus.config.load import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import TINY_MODEL, records

pytestmark = pytest.mark.slow

DEFAULTS = {"micro_batch_size": 2, "max_seq_length": 32, "mixed_precision": "fp32", "device": "cpu",
            "log_interval": 1, "save_interval": 1}


def chat_record(i: int, role: str = "bot") -> dict:
    return {"conversations": [{"from": "human", "value": f"What is {i} plus {i}?"},
                              {"from": role, "value": f"It is {2 * i}, since {i} + {i} = {2 * i}."}]}


def write_records(path, rows) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path.parent)


def chat_plan(source: str, **extra) -> PlanConfig:
    return validate(PlanConfig, {
        "name": "chat", "sources": {"chat": {"path": source, "format": "chat", "loss_on": "assistant", **extra}},
        "model": {"size": "tiny", "overrides": TINY_MODEL}, "tokenizer": {"vocab_size": 300},
        "defaults": DEFAULTS,
        "stages": [{"name": "sft", "data": {"chat": 1.0}, "budget": {"steps": 3}, "lr": {"peak": 1e-3, "warmup": 0}}],
        "evaluation": {"every": 100}})


def test_bot_records_train_with_a_finite_nonzero_loss(tmp_path):
    source = write_records(tmp_path / "chat" / "train.jsonl", [chat_record(i) for i in range(400)])
    assert run_plan(chat_plan(source), tmp_path / "run")["status"] == "finished"
    losses = [r["loss"] for r in records(tmp_path / "run") if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) and x > 0.1 for x in losses)


def test_narrator_records_are_refused_naming_the_role_then_train_once_mapped(tmp_path):
    source = write_records(tmp_path / "chat" / "train.jsonl", [chat_record(i, "narrator") for i in range(100)])
    with pytest.raises(ConfigError, match=r"unknown_role:narrator=\d+.*roles: \{narrator: assistant\}"):
        run_plan(chat_plan(source), tmp_path / "run")
    assert run_plan(chat_plan(source, roles={"narrator": "assistant"}), tmp_path / "run2")["status"] == "finished"
