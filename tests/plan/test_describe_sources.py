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
