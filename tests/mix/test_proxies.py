"""A proxy's plan is the user's plan with the stage's mixture and budget replaced; the default objective includes
the domains the forgetting gate watches; bad flags are one line."""

import math

import pytest

from syllabus.config.errors import ConfigError
from syllabus.config.plan import PlanConfig
from syllabus.mix.proxies import Objective, default_domains, proxy_plan, stage_components
from syllabus.mix.search import parse_objective
from syllabus.plan.stages import stage_weights

PLAN = PlanConfig.model_validate({
    "name": "p", "sources": {"wiki": "w", "reasoning": "r", "math": "m", "code": "c"},
    "stages": [{"name": "found", "data": {"wiki": 1.0}, "budget": {"steps": 50}},
               {"name": "reason", "data": {"reasoning": 0.8}, "replay": {"fraction": 0.2, "from": ["found"]},
                "budget": {"steps": 40}, "lr": {"warmup": 8}, "special_tokens": ["<think>"],
                "expect": {"ppl": {"reasoning": "< 9"}}},
               {"name": "math", "data": {"math": 0.6, "code": 0.2}, "replay": {"fraction": 0.2,
                "from": ["found", "reason"]}, "budget": {"steps": 40}, "special_tokens": ["<step>"]}],
    "forgetting": {"watch": ["wiki", "code"], "action": "replay"}})


def test_default_domains_are_the_stage_own_and_the_watched_ones_already_trained():
    assert default_domains(PLAN, 1) == ["reasoning", "wiki"]  # code is watched but not trained before
    assert default_domains(PLAN, 2) == ["math", "code", "wiki"]
    assert stage_components(PLAN, 2) == {"math": 0.6, "code": 0.2, "replay": 0.2}


def test_proxy_mode_plan_is_the_stage_alone_with_replay_as_sources():
    weights = {"math": 0.5, "code": 0.1, "replay": 0.4}
    objective = Objective({"math": 1.0, "code": 1.0, "wiki": 1.0})
    data = proxy_plan(PLAN, 2, weights, steps=5, objective=objective, branch=False, tokenizer="/t.json",
                      edits=["model.overrides.hidden_size=64"], name="p-math-p03")
    proxy = PlanConfig.model_validate(data)
    assert [s.name for s in proxy.stages] == ["math"] and proxy.name == "p-math-p03"
    real = PlanConfig.model_validate({**PLAN.model_dump(by_alias=True), "stages": [
        *PLAN.model_dump(by_alias=True)["stages"][:2],
        {**PLAN.model_dump(by_alias=True)["stages"][2], "data": {"math": 0.5, "code": 0.1},
         "replay": {"fraction": 0.4, "from": ["found", "reason"]}}]})
    assert stage_weights(proxy, 0) == pytest.approx(stage_weights(real, 2))  # the same token shares
    stage = proxy.stages[0]
    assert stage.replay is None and stage.budget.steps == 5 and stage.special_tokens == ["<think>", "<step>"]
    assert stage.evaluation.perplexity == ["math", "code", "wiki"] and stage.evaluation.replace
    assert proxy.model.overrides == {"hidden_size": 64} and proxy.tokenizer.path == "/t.json"
    assert proxy.forgetting.domains == []


def test_branch_mode_plan_keeps_the_stages_before_and_the_replay_block():
    weights = {"reasoning": 0.7, "replay": 0.3}
    data = proxy_plan(PLAN, 1, weights, steps=4, objective=Objective({"reasoning": 1.0, "wiki": 1.0}), branch=True,
                      tokenizer=None, edits=[], name="x")
    proxy = PlanConfig.model_validate(data)
    assert proxy.stages[0] == PLAN.stages[0] and len(proxy.stages) == 2
    stage = proxy.stages[1]
    assert stage.data == {"reasoning": 0.7} and stage.replay.fraction == 0.3 and stage.replay.from_ == ["found"]
    assert stage.budget.steps == 4 and stage.lr.warmup == 1 and stage.expect == {}  # warmup 8/40 of the stage
    assert proxy.forgetting.action == "warn" and proxy.name == PLAN.name


def test_objective_flags():
    assert parse_objective(None, PLAN, 2).domains == {"math": 1.0, "code": 1.0, "wiki": 1.0}
    assert parse_objective("math=2,wiki=1", PLAN, 2).domains == {"math": 2.0, "wiki": 1.0}
    task = parse_objective("arithmetic/accuracy", PLAN, 2)
    assert task.score({"arithmetic/accuracy": 0.3, "arithmetic/accuracy_stderr": 0.02, "ppl/math": math.e})[:2] \
        == (-0.3, 0.02)
    value, _, losses = Objective({"math": 3.0, "wiki": 1.0}).score({"ppl/math": math.exp(2), "ppl/wiki": math.exp(4)})
    assert value == pytest.approx(2.5) and losses == pytest.approx({"math": 2.0, "wiki": 4.0})
    assert math.isnan(Objective({"math": 1.0}).score({})[0])
    for bad, message in (("books=1", "--objective: domains must be sources"), ("wiki=x", "needs domain=weight"),
                         ("accuracy", "neither domain=weight")):
        with pytest.raises(ConfigError, match=message):
            parse_objective(bad, PLAN, 2)


def test_bad_search_flags_are_one_line_with_exit_code_2(tmp_path, capsys):
    import yaml

    from syllabus.cli.main import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(PLAN.model_dump(by_alias=True), sort_keys=False))
    for extra, message in ((["--stage", "nope"], "--stage: 'nope' is not a stage (found, reason, math)"),
                           (["--stage", "math", "--bound", "math=0.5"], "--bound 'math=0.5': expected NAME=MIN:MAX"),
                           (["--stage", "found", "--from-run", str(tmp_path)], "--from-run: stage 'found' is the first"),
                           (["--stage", "math", "--parallel", "0"], "--parallel: must be at least 1")):
        assert main(["mix", "search", str(plan), "--out", str(tmp_path / "s"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
