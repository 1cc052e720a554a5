"""``--help`` is written for a human: metavars say what to type, every flag says what it does, exit codes are
listed; a learning-rate schedule that never reaches its peak is warned about once, at the door."""

import logging

import pytest

from syllabus.cli.main import build_parser, main
from syllabus.config.pretrain import ModelOverrides, PreTrainingConfig
from tests.conftest import TINY_FLAGS


def help_of(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_pretrain_help_shows_readable_metavars_and_descriptions(capsys):
    text = help_of(capsys, "pretrain")
    assert "FIELD_" not in text
    for shown in ("--max-steps N", "--learning-rate LR", "--data-dir PATH", "--resume auto|PATH",
                  "--mixed-precision {auto,fp32,bf16,fp16", "--lr-schedule {cosine,constant,wsd}",
                  "--data-sources PATH [PATH ...]", "peak learning rate, reached at the end of warmup"):
        assert shown in text, shown
    assert "exit codes:" in text and "130" in text


def test_every_training_field_has_a_description():
    for model in (PreTrainingConfig, ModelOverrides):
        missing = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
        assert missing == [], model.__name__


@pytest.mark.parametrize("command", ["run", "status", "eval", "export"])
def test_every_command_lists_its_exit_codes(capsys, command):
    assert "exit codes:" in help_of(capsys, command)


def test_warmup_beyond_max_steps_is_warned_once_naming_both(code_corpus, code_tokenizer, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="syllabus")
    argv = ["pretrain", "--data-dir", str(code_corpus), "--tokenizer", str(code_tokenizer), "--out",
            str(tmp_path), "--device", "cpu", "--mixed-precision", "fp32", "--max-seq-length", "32",
            "--batch-size", "2", "--max-steps", "2", "--warmup-steps", "100", "--eval-batches", "1", *TINY_FLAGS]
    assert main(argv) == 0
    warnings = [r.getMessage() for r in caplog.records if "warmup_steps" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "warmup_steps (100) >= max_steps (2)" in warnings[0]


def test_warmup_below_max_steps_is_not_warned():
    assert PreTrainingConfig(max_steps=40, warmup_steps=10).schedule_warnings() == []
    assert PreTrainingConfig(max_steps=40).schedule_warnings() != []  # the default warmup of 100


def test_a_plan_stage_whose_warmup_outlasts_it_is_warned_once_in_the_plan_table(tmp_path):
    from syllabus.config import validate
    from syllabus.config.plan import PlanConfig
    from syllabus.plan.describe import describe_plan
    from syllabus.plan.stages import resolve_stages

    plan = validate(PlanConfig, {"name": "p", "sources": {"a": "a", "b": "b"}, "stages": [
        {"name": "short", "data": {"a": 1.0}, "budget": {"steps": 40}},  # the default warmup of 100 steps
        {"name": "fine", "data": {"b": 1.0}, "budget": {"steps": 40}, "lr": {"warmup": 10}}]})
    table = describe_plan(plan, resolve_stages(plan, tmp_path, {}), {})
    warnings = [line.strip() for line in table.splitlines() if "warning:" in line]
    assert warnings == ["warning: stages.0.lr.warmup (100) >= the stage's max_steps (40): cut to 39, the LR peaks "
                        "only at the end; lower lr.warmup"]
