"""Per-stage evaluation and decision points are checked at the door: one line per problem, naming the field."""

import copy

import pytest

from syllabus.config import ConfigError, validate
from syllabus.config.plan import PlanConfig
from tests.plan.test_plan_config import GOOD, assert_one_problem, edited


def test_stage_evaluation_extends_or_replaces_the_plans():
    plan = copy.deepcopy(GOOD)
    plan["evaluation"] = {"tasks": ["hellaswag"], "perplexity": ["wiki"], "every": 50, "limit": 10}
    plan["stages"][1]["evaluation"] = {"tasks": ["arithmetic", "hellaswag"], "tasks_every": 100, "limit": 40}
    plan["stages"][0]["evaluation"] = {"replace": True, "tasks": ["lm_eval:local_arc_easy"]}
    plan = validate(PlanConfig, plan)
    math_eval = plan.stage_evaluation(1)
    assert math_eval.tasks == ["hellaswag", "arithmetic"] and math_eval.perplexity == ["wiki"]
    assert (math_eval.every, math_eval.tasks_every, math_eval.limit) == (50, 100, 40)
    first = plan.stage_evaluation(0)
    assert first.tasks == ["lm_eval:local_arc_easy"] and first.perplexity == [] and first.limit == 20


def test_decision_points_parse():
    from syllabus.config.expect import parse_expect

    expectation, problems = parse_expect({"arithmetic": "> 0.5", "ppl": {"math": "< 30"}, "on_miss": "extend",
                                          "extend": {"steps": 100, "times": 2}})
    assert problems == [] and expectation.targets == {"arithmetic": "> 0.5", "ppl/math": "< 30"}
    assert expectation.extend.steps == 100 and expectation.extend.times == 2


@pytest.mark.parametrize("path, value, expected", [
    ("stages.1.evaluation", {"tasks": ["squad"]}, "stages.1.evaluation.tasks: 'squad' is not a task"),
    ("stages.1.evaluation", {"perplexity": ["poetry"]}, "stages.1.evaluation.perplexity: 'poetry' is not a source"),
    ("stages.1.evaluation", {"tasks_every": 0}, "stages.1.evaluation.tasks_every: Input should be greater than"),
    ("stages.1.evaluation", {"sometimes": 3}, "stages.1.evaluation.sometimes"),
    ("stages.1.expect", {"arithmetic": "> 0.5", "on_miss": "panic"},
     "stages.1.expect.on_miss: must be one of continue, pause, extend, stop (got 'panic')"),
    ("stages.1.expect", {"arithmetic": "> 0.5", "on_miss": "extend"}, "stages.1.expect.extend: on_miss: extend needs"),
    ("stages.1.expect", {"arithmetic": "> 0.5", "on_miss": "extend", "extend": {"steps": 10, "epochs": 1}},
     "stages.1.expect.extend: give exactly one of steps, tokens, epochs (got steps, epochs)"),
    ("stages.1.expect", {"arithmetic": "> 0.5", "on_miss": "extend", "extend": {"steps": 10, "times": 0}},
     "stages.1.expect.extend.times: must be an integer >= 1 (got 0)"),
    ("stages.1.expect", {"arithmetic": "about 0.5"}, "stages.1.expect.arithmetic: a target is '<op> number'"),
    ("stages.1.expect", {"on_miss": "stop"}, "stages.1.expect: on_miss and extend need at least one target"),
])
def test_each_invalid_evaluation_gives_one_line(path, value, expected):
    assert_one_problem(edited(path, value), expected)


def test_a_run_folder_from_before_stage_evaluation_still_resumes():
    """Stages frozen without the new ``evaluation`` key are not "edited" by it; a real edit still is."""
    from syllabus.plan.run_state import RunState

    old = validate(PlanConfig, GOOD).stages[0].model_dump(by_alias=True)
    old.pop("evaluation")
    state = RunState(started={"foundation": old})
    state.check_frozen([validate(PlanConfig, GOOD).stages[0].model_dump(by_alias=True)])
    with pytest.raises(ConfigError, match="stages.foundation: evaluation changed"):
        state.check_frozen([validate(PlanConfig, edited("stages.0.evaluation", {"tasks": ["arc"]})).stages[0]
                            .model_dump(by_alias=True)])


def test_task_options_reach_the_stage_and_a_missing_items_file_is_refused_at_the_door(tmp_path):
    import pytest

    from syllabus.config.errors import ConfigError
    from syllabus.config.load import validate
    from syllabus.config.plan import PlanConfig
    from syllabus.plan.door import check_plan_data
    from syllabus.plan.runner import task_arguments
    from syllabus.plan.stages import resolve_stages

    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "val.jsonl").write_text('{"text": "held out"}\n')
    (tmp_path / "wiki" / "train.jsonl").write_text('{"text": "trained on"}\n')
    mine = tmp_path / "mine.jsonl"
    plan = {"name": "p", "sources": {"wiki": str(tmp_path / "wiki")},
            "stages": [{"name": "a", "data": {"wiki": 1.0}, "budget": {"steps": 2},
                        "evaluation": {"task_options": {"gsm8k": {"items": str(mine)}}}}],
            "evaluation": {"tasks": ["gsm8k"], "task_options": {"gsm8k": {"shots": 4}}}}
    with pytest.raises(ConfigError, match=r"stages.0.evaluation.task_options.gsm8k.items: file not found"):
        check_plan_data(validate(PlanConfig, plan))
    mine.write_text("")
    config = validate(PlanConfig, plan)
    check_plan_data(config)
    (stage,) = resolve_stages(config, tmp_path / "run", {})
    assert task_arguments(stage.task_options) == {"shots": {}, "items": {"gsm8k": str(mine)}}  # the stage's wins
    plan["stages"][0].pop("evaluation")
    (stage,) = resolve_stages(validate(PlanConfig, plan), tmp_path / "run", {})
    assert task_arguments(stage.task_options) == {"shots": {"gsm8k": 4}, "items": {}}
    plan["evaluation"]["task_options"] = {"arc": {"items": str(mine)}, "nope": {"shots": 1}}
    with pytest.raises(ConfigError) as err:
        validate(PlanConfig, plan)
    assert "task_options.arc.items: only gsm8k" in str(err.value) and "task_options.nope: not a benchmark" in str(err.value)
