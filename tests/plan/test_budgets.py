"""Stage budgets in tokens and in epochs become the number of optimizer steps the stage really trains."""

import math

import pytest

from syllabus.data import epoch_tokens, load_tokenizer
from tests.faults.harness import ok
from tests.plan.conftest import make_plan, records, run_argv, write_plan

pytestmark = pytest.mark.slow
TOKENS_PER_STEP = 4 * 64  # the plan defaults: micro batch 4 x seq_len 64, no accumulation


def test_token_and_epoch_budgets_train_the_steps_they_stand_for(demo_corpus, demo_tokenizer, tmp_path):
    stages = [{"name": "by_tokens", "data": {"wiki": 1.0}, "budget": {"tokens": 2500}, "lr": {"warmup": 1}},
              {"name": "by_epochs", "data": {"code": 1.0}, "budget": {"epochs": 0.01}, "lr": {"warmup": 1}}]
    plan = make_plan(demo_corpus, demo_tokenizer, stages)
    plan["evaluation"].update({"every": 1000, "perplexity": []})
    out = tmp_path / "run"
    ok(run_argv(write_plan(tmp_path, plan), out))
    code_epoch = epoch_tokens(demo_corpus / "code", load_tokenizer(demo_tokenizer))
    want = {"by_tokens": math.ceil(2500 / TOKENS_PER_STEP),  # 10 steps: 2,560 tokens >= 2,500
            "by_epochs": math.ceil(0.01 * code_epoch / TOKENS_PER_STEP)}
    assert want["by_epochs"] > 1
    for stage, steps in want.items():
        logged = [r for r in records(out, stage=stage) if "loss" in r]
        assert [r["step"] for r in logged] == list(range(1, steps + 1)), stage
        assert logged[-1]["tokens_seen"] == steps * TOKENS_PER_STEP
