"""After a stage ends, its trainer, model and optimizer are released before the next stage builds its own."""

import weakref

import pytest

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan import runner
from tests.plan.conftest import make_plan

pytestmark = pytest.mark.slow

STAGES = [
    {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 3}},
    {"name": "two", "data": {"code": 1.0}, "budget": {"steps": 2}},
]


def test_the_previous_stage_is_released_when_the_next_one_starts(demo_corpus, demo_tokenizer, tmp_path,
                                                                  monkeypatch):
    seen: list[dict] = []

    class Recorded(runner.Trainer):
        def __init__(self, *args, **kwargs):
            # at the next stage's start every object of the previous one must be gone already
            seen.append({"alive_then": [name for name, ref in seen[-1]["refs"].items() if ref() is not None]
                         if seen else []})
            super().__init__(*args, **kwargs)
            seen[-1]["refs"] = {"trainer": weakref.ref(self), "model": weakref.ref(self.raw_model),
                                "optimizer": weakref.ref(self.optimizer)}

    monkeypatch.setattr(runner, "Trainer", Recorded)
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, STAGES,
                                          evaluation={"every": 100, "perplexity": ["wiki"], "batches": 1}))
    assert runner.run_plan(plan, tmp_path / "run")["status"] == "finished"
    assert [s["alive_then"] for s in seen] == [[], []]
