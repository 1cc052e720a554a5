"""Bad configuration: every field with a wrong type, an unknown key, missing required keys, inconsistent values.
Each is one readable line per problem naming the field, before any work (no run folder), exit code 2.

Run in-process through the CLI's ``main`` (the same path as the ``syllabus`` command, without the start-up)."""

import typing

import pytest
import yaml

from syllabus.cli.main import main
from syllabus.config.plan import PlanConfig, StageConfig
from syllabus.config.pretrain import PreTrainingConfig


def accepts_text(annotation) -> bool:
    return annotation is str or any(accepts_text(a) for a in typing.get_args(annotation))


def wrong_value(annotation) -> str:
    """A YAML value of the wrong type for ``annotation``: a mapping where text is allowed, else a word."""
    return "{wrong: 1}" if accepts_text(annotation) else "not-a-value"


def problems(capsys, argv: list[str], command: str) -> list[str]:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith(f"syllabus {command}: "), err
    return [lines[0].removeprefix(f"syllabus {command}: "), *lines[1:]]


@pytest.mark.parametrize("name", list(PreTrainingConfig.model_fields))
def test_every_pretrain_field_with_a_wrong_type_is_one_line_naming_it(name, capsys, tmp_path):
    value = wrong_value(PreTrainingConfig.model_fields[name].annotation)
    out = tmp_path / "run"
    found = problems(capsys, ["pretrain", "--out", str(out), "--set", f"{name}={value}"], "pretrain")
    assert len(found) == 1 and found[0].startswith(f"{name}: "), found
    assert not out.exists()


def test_several_problems_are_one_line_each(capsys, tmp_path):
    found = problems(capsys, ["pretrain", "--out", str(tmp_path / "run"), "--max-steps", "zero", "--set", "max_stepz=5",
                              "--set", "model.hidden_sise=64", "--learning-rate", "-1"], "pretrain")
    assert sorted(found) == sorted([
        "max_stepz: unknown field; did you mean 'max_steps'?",
        "model.hidden_sise: unknown field; did you mean 'hidden_size'?",
        "max_steps: Input should be a valid integer, unable to parse string as an integer (got 'zero')",
        "learning_rate: Input should be greater than 0 (got -1)"])


@pytest.mark.parametrize("flags, line", [
    (["--data-sources", "a", "b", "--data-mix-weights", "1.0"],
     "data_mix_weights: 1 weights for 2 data_sources; give one weight per source"),
    (["--data-sources", "a", "b", "--data-mix-weights", "0.7", "0.7"], "data_mix_weights: must sum to 1, got 1.4"),
    (["--learning-rate", "1e-4", "--min-learning-rate", "1e-3"], "min_learning_rate: 0.001 exceeds learning_rate (0.0001)"),
    (["--max-seq-length", "100000"], "max_seq_length: 100000 exceeds the model's max_position_embeddings (1024)"),
    ([], "data_dir: give a data folder (or data_sources: a list of paths)"),  # the one input pretrain needs
])
def test_inconsistent_or_missing_pretrain_values(flags, line, capsys, tmp_path):
    out = tmp_path / "run"
    assert problems(capsys, ["pretrain", "--out", str(out), *flags], "pretrain") == [line]
    assert not out.exists()


def valid_plan() -> dict:
    return {"name": "p", "sources": {"wiki": "/data/wiki"},
            "stages": [{"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 5}}]}


def run_plan_problems(capsys, tmp_path, plan: dict) -> list[str]:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    out = tmp_path / "run"
    found = problems(capsys, ["run", str(path), "--out", str(out)], "run")
    assert not out.exists()
    return found


REQUIRED = [(key, None) for key, f in PlanConfig.model_fields.items() if f.is_required()] + \
           [(key, 0) for key, f in StageConfig.model_fields.items() if f.is_required()]


@pytest.mark.parametrize("key, stage", REQUIRED, ids=[f"{'stages.0.' if s is not None else ''}{k}" for k, s in REQUIRED])
def test_every_required_plan_key_missing_is_one_line(key, stage, capsys, tmp_path):
    plan = valid_plan()
    del (plan if stage is None else plan["stages"][stage])[key]
    where = key if stage is None else f"stages.{stage}.{key}"
    assert run_plan_problems(capsys, tmp_path, plan) == [f"{where}: required field is missing"]


def test_plan_type_errors_unknown_keys_and_inconsistencies_are_one_line_each(capsys, tmp_path):
    plan = valid_plan()
    plan["seed"] = "many"
    plan["stagez"] = []
    plan["stages"][0]["budget"] = {"steps": "few"}
    found = run_plan_problems(capsys, tmp_path, plan)
    assert sorted(found) == sorted([
        "seed: Input should be a valid integer, unable to parse string as an integer (got 'many')",
        "stagez: unknown field; did you mean 'stages'?",
        "stages.0.budget.steps: Input should be a valid integer, unable to parse string as an integer (got 'few')"])
    plan = valid_plan()
    plan["stages"][0]["data"] = {"wiki": 0.5, "code": 0.3}
    plan["stages"].append({"name": "one", "data": {"wiki": 1.0}, "replay": {"fraction": 0.2, "from": ["later"]}})
    found = run_plan_problems(capsys, tmp_path, plan)
    assert found == ["stages.0.data.code: not a source (sources: wiki)",
                     "stages.0.data: weights must sum to 1, got 0.8",
                     "stages.1.name: 'one' is used by an earlier stage",
                     "stages.1.data: weights plus replay.fraction must sum to 1, got 1.2",
                     "stages.1.replay.from: 'later' is neither an earlier stage nor a source one used"]
