"""Shared pieces of the fault-injection suite: a tiny single-stage run and a small three-stage plan, each with
its uninterrupted reference losses.

Every fault test runs the real ``syllabus`` command in a subprocess (real signals, real exits) on a tiny
fp32 CPU model, so "resume is exact" can be checked as equality of per-step losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.harness import ok, pretrain_argv, step_losses
from tests.plan.conftest import demo_corpus, demo_tokenizer, losses, make_plan, run_argv, write_plan  # noqa: F401

# Three short stages: saves every 2 steps, evaluations every 3, a curriculum change, replay and a special
# token, so that kills land mid-step, mid-save, during evaluation and at stage boundaries.
FAULT_STAGES = [
    {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 8}, "lr": {"peak": 2e-3, "warmup": 2},
     "curriculum": [{"at": 0, "seq_len": 32}, {"at": 4, "seq_len": 64}]},
    {"name": "two", "data": {"math": 0.75}, "replay": {"fraction": 0.25, "from": ["one"]},
     "budget": {"steps": 8}, "lr": {"peak": 1e-3, "warmup": 2}, "special_tokens": ["<calculation>"]},
    {"name": "three", "data": {"code": 1.0}, "budget": {"steps": 8}, "lr": {"peak": 5e-4, "warmup": 2}},
]
PRETRAIN_STEPS = 12


def fault_plan(corpus: Path, tokenizer: Path) -> dict:
    plan = make_plan(corpus, tokenizer, FAULT_STAGES)
    plan["defaults"].update({"save_interval": 2, "keep_last_n_checkpoints": 2, "device": "cpu"})
    plan["evaluation"].update({"every": 3, "batches": 1, "perplexity": ["wiki"]})
    return plan


@pytest.fixture(scope="session")
def plan_file(demo_corpus, demo_tokenizer, tmp_path_factory) -> Path:
    return write_plan(tmp_path_factory.mktemp("fault_plan"), fault_plan(demo_corpus, demo_tokenizer))


@pytest.fixture(scope="session")
def plan_reference(plan_file, tmp_path_factory) -> Path:
    """The run folder of the plan run once, uninterrupted."""
    out = tmp_path_factory.mktemp("plan_reference") / "run"
    ok(run_argv(plan_file, out))
    return out


def same_run(out: Path, reference: Path) -> None:
    """The same per-step losses, and the same end-of-stage evaluations and reference perplexities."""
    assert losses(out) == losses(reference)
    for key in ("completed", "results", "reference_ppl"):
        assert run_state(out)[key] == run_state(reference)[key], key


def run_state(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_state.json").read_text())


@pytest.fixture(scope="session")
def pretrain_reference(code_corpus, code_tokenizer, tmp_path_factory) -> dict:
    """step -> loss of a single-stage run of ``PRETRAIN_STEPS`` steps, uninterrupted."""
    out = tmp_path_factory.mktemp("pretrain_reference")
    ok(pretrain_argv(code_corpus, code_tokenizer, out, "--max-steps", str(PRETRAIN_STEPS)))
    return step_losses(out)
