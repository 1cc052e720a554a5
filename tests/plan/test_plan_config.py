"""Every invalid plan is rejected before training, with one readable line naming the field."""

import copy
import subprocess
import sys

import pytest
import yaml

from syllabus.config import ConfigError, validate
from syllabus.config.plan import PlanConfig

GOOD = {
    "name": "p",
    "sources": {"wiki": "data/wiki", "math": "data/math", "code": "data/code"},
    "model": {"size": "tiny"},
    "stages": [
        {"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 100},
         "curriculum": [{"at": 0, "seq_len": 64}, {"at": 50, "seq_len": 256}]},
        {"name": "math", "data": {"math": 0.9}, "replay": {"fraction": 0.1, "from": ["foundation"]},
         "special_tokens": ["<calculation>"]},
    ],
}


def assert_one_problem(plan: dict, expected: str) -> None:
    """``plan`` is refused with exactly one problem line, starting with ``expected``."""
    with pytest.raises(ConfigError) as err:
        validate(PlanConfig, plan)
    problems = str(err.value).splitlines()
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def edited(path: str, value):
    plan = copy.deepcopy(GOOD)
    node = plan
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return plan


def test_good_plan_is_accepted():
    plan = validate(PlanConfig, GOOD)
    assert plan.stages[1].replay.from_ == ["foundation"]


@pytest.mark.parametrize("path, value, expected", [
    ("stages.1.data", {"math": 0.8}, "stages.1.data: weights plus replay.fraction must sum to 1, got 0.9"),
    ("stages.1.replay", {"fraction": 0.1, "from": ["code"]},
     "stages.1.replay.from: 'code' is neither an earlier stage nor a source one used"),
    ("stages.0.curriculum.1.at", 150, "stages.0.curriculum.1.at: step 150 is beyond the budget of 100 steps"),
    ("stages.0.curriculum.1.seq_len", 4096, "stages.0.curriculum.1.seq_len: 4096 exceeds the model's context (1024)"),
    ("stages.1.special_tokens", ["<|endoftext|>"], "stages.1.special_tokens: '<|endoftext|>' already exists"),
    ("stages.0.data", {"wikki": 1.0}, "stages.0.data.wikki: not a source"),
    ("stages.0.budget", {"steps": 10, "tokens": 1000}, "stages.0.budget: give exactly one of steps, tokens, epochs"),
    ("stages.1.name", "foundation", "stages.1.name: 'foundation' is used by an earlier stage"),
    ("stages.0.overrides", {"weight_decay": -1}, "stages.0.weight_decay: Input should be greater than or equal to 0"),
    ("stages.0.overrides", {"learning_rate": 1.0}, "stages.0.overrides.learning_rate: set by the plan itself, in "
                                                   "`stages[].lr.peak`"),
    ("defaults", {"seed": 2}, "defaults.seed: set by the plan itself, in the top-level `seed`"),
    ("stages.0.overrides", {"seed": 2}, "stages.0.overrides.seed: set by the plan itself, in the top-level `seed`"),
    ("defaults", {"eval_batches": 2}, "defaults.eval_batches: set by the plan itself, in `evaluation.batches`"),
    ("defaults", {"eval_interval": 5}, "defaults.eval_interval: set by the plan itself, in `evaluation.every`"),
    ("stages.0.overrides", {"max_seq_length": 64}, "stages.0.overrides.max_seq_length: set by this stage's curriculum"),
    ("forgetting", {"watch": "poetry"}, "forgetting.watch: 'poetry' is not a source"),
    ("evaluation", {"tasks": ["hellaswag", "squad"]}, "evaluation.tasks: 'squad' is not a task"),
    ("forgetting", {"action": "panic"}, "forgetting.action: Input should be 'warn', 'reduce_lr', 'replay' or 'stop'"),
])
def test_each_invalid_plan_gives_one_line(path, value, expected):
    assert_one_problem(edited(path, value), expected)


def test_special_token_repeated_in_a_later_stage():
    plan = copy.deepcopy(GOOD)
    plan["stages"][0]["special_tokens"] = ["<calculation>"]
    with pytest.raises(ConfigError, match="stages.1.special_tokens: '<calculation>' already exists"):
        validate(PlanConfig, plan)


def test_cli_exits_2_with_one_line_per_problem(tmp_path):
    plan = edited("stages.1.data", {"math": 0.5})
    plan["stages"][0]["data"] = {"nope": 1.0}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    out = subprocess.run([sys.executable, "-m", "syllabus", "run", str(path), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


def test_plan_knows_the_same_tasks_as_the_evaluator():
    from syllabus.config.plan import BENCHMARK_TASKS
    from syllabus.evaluate.tasks import TASKS

    assert set(BENCHMARK_TASKS) == set(TASKS)
