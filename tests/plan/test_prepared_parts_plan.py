"""A plan over a source prepared in many parts (one shard per part, cross-part duplicates dropped) resumes after
SIGKILL with the losses of an uninterrupted run."""

import json
import signal

import pytest

from syllabus.data import load_tokenizer, prepare_shards
from syllabus.data.shards import ShardSet
from tests.plan.conftest import losses, make_plan, run_argv, write_plan
from tests.train.runs import run, start_and_signal

pytestmark = pytest.mark.slow


def test_plan_over_a_many_part_source_resumes_exactly(demo_corpus, demo_tokenizer, tmp_path):
    prepared = tmp_path / "wiki"
    report = prepare_shards([str(demo_corpus / "wiki")], load_tokenizer(demo_tokenizer), prepared, workers=2,
                            part_bytes=12_000, echo=lambda *_: None)
    assert report["parts"]["total"] >= 5
    header = json.loads((prepared / "train" / "header.json").read_text())
    assert len(header["shards"]) >= 4 and ShardSet(prepared / "train").num_tokens == header["num_tokens"]
    stages = [{"name": "one", "data": {"wiki": 0.7, "math": 0.3}, "budget": {"steps": 8},
               "lr": {"peak": 2e-3, "warmup": 2}}]
    plan = make_plan(demo_corpus, demo_tokenizer, stages)
    plan["sources"]["wiki"] = str(prepared)
    plan["defaults"]["save_interval"] = 3
    plan["evaluation"]["perplexity"] = ["wiki"]
    plan_path = write_plan(tmp_path, plan)
    run(run_argv(plan_path, tmp_path / "straight"))
    out = tmp_path / "killed"
    code = start_and_signal(run_argv(plan_path, out), out / "stages" / "1-one" / "checkpoints" / "step_3" /
                            "manifest.json", signal.SIGKILL)
    assert code == -signal.SIGKILL
    done = run(run_argv(plan_path, out))
    assert "resumed from" in done.stderr
    assert losses(out) == losses(tmp_path / "straight")
