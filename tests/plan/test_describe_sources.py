"""The plan table says how each source is read and where its held-out rows come from."""

from syllabus.config.load import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.describe import describe_plan
from syllabus.plan.stages import resolve_stages
from tests.data.test_records import GSM8K, write


def test_plan_table_names_record_options_and_held_out_rows(tmp_path):
    write(tmp_path / "gsm8k" / "train.jsonl", [GSM8K])
    write(tmp_path / "gsm8k" / "test.jsonl", [GSM8K])
    write(tmp_path / "mot" / "train.jsonl", [{"messages": []}])
    plan = validate(PlanConfig, {
        "name": "p", "sources": {"gsm8k": {"path": str(tmp_path / "gsm8k"), "template": "{question} {answer}",
                                           "calculator": "tags"},
                                 "mot": {"path": str(tmp_path / "mot"), "format": "chat"}, "hub": "hf:openai/gsm8k:main"},
        "stages": [{"name": "s", "data": {"gsm8k": 0.5, "mot": 0.25, "hub": 0.25}, "budget": {"steps": 2}}]})
    table = describe_plan(plan, resolve_stages(plan, tmp_path / "run", {}), {})
    assert "calculator: tags" in table and "held out: the test file" in table
    assert "format: chat" in table and "held out: a content-hash split" in table
    assert "validation (else test) split" in table


def small_source_plan(tmp_path, n_docs: int, **source_options) -> "PlanConfig":
    write(tmp_path / "small" / "train.jsonl", [{"text": f"doc {i}: a short line of prose."}
                                               for i in range(n_docs)])
    return validate(PlanConfig, {
        "name": "p", "sources": {"small": {"path": str(tmp_path / "small"), **source_options}},
        "stages": [{"name": "s", "data": {"small": 1.0}, "budget": {"steps": 2}, "merge": {"last": 2}}],
        "evaluation": {"every": 1, "perplexity": ["small"]}})


def test_the_plan_table_counts_held_out_documents(tmp_path):
    from syllabus.plan.door import check_plan_data

    plan = small_source_plan(tmp_path, 150, val_fraction=0.2)
    held = check_plan_data(plan)
    assert held["small"].exact and held["small"].total == 150 and 10 < held["small"].docs < 50
    table = describe_plan(plan, resolve_stages(plan, tmp_path / "run", {}), {}, held)
    assert f"held out: a 20% content-hash split: {held['small'].docs} of 150 documents" in table


def test_a_perplexity_source_holding_out_nothing_is_refused_in_one_line(tmp_path):
    import pytest

    from syllabus.config.errors import ConfigError
    from syllabus.plan.door import check_plan_data
    from syllabus.plan.runner import run_plan

    plan = small_source_plan(tmp_path, 150)
    assert check_plan_data.__module__  # the door, before any file
    with pytest.raises(ConfigError) as err:
        run_plan(plan, tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message and message.startswith("sources.small: holds out 0 of its 150 documents")
    assert "val file" in message and "val_fraction: 0.1" in message and "drop it from perplexity" in message
    assert "merge" in message and not (tmp_path / "run").exists()

