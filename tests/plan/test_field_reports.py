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


def test_a_small_source_with_a_larger_split_is_evaluated_merged_and_reported(tmp_path):
    """The field report's 150-document train.jsonl with `merge: {last: 3}`: refused with the 1% split (see
    test_describe_sources), evaluated with `val_fraction: 0.2` — losses measured, the merge compared by numbers,
    the report written."""
    rows = [{"text": f"doc {i}: a short line of prose about the number {i}."} for i in range(150)]
    source = write_records(tmp_path / "small" / "train.jsonl", rows)
    plan = validate(PlanConfig, {
        "name": "small", "sources": {"small": {"path": source, "val_fraction": 0.2}},
        "model": {"size": "tiny", "overrides": TINY_MODEL}, "tokenizer": {"vocab_size": 300},
        "defaults": {**DEFAULTS, "keep_last_n_checkpoints": 3},
        "stages": [{"name": "s", "data": {"small": 1.0}, "budget": {"steps": 6}, "lr": {"peak": 1e-3, "warmup": 0},
                    "merge": {"last": 3}}],
        "evaluation": {"every": 2, "perplexity": ["small"], "batches": 1}})
    summary = run_plan(plan, tmp_path / "run")
    assert summary["status"] == "finished" and (tmp_path / "run" / "report.md").is_file()
    evals = [json.loads(line) for line in open(tmp_path / "run" / "evals.jsonl")]
    merges = [r for r in evals if r.get("event") == "merge"]
    assert len(merges) == 2 and all(math.isfinite(r["mean_loss"]) for r in merges)
    assert [r for r in records(tmp_path / "run") if "val_loss/small" in r]
