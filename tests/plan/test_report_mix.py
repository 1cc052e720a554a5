"""The report's data mix when the forgetting gate re-weights a stage at its very last evaluation."""

import re

import pytest

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import make_plan, records

pytestmark = pytest.mark.slow


def test_realized_mix_counts_the_whole_stage_when_the_gate_reweights_at_its_end(demo_corpus, demo_tokenizer,
                                                                                 tmp_path, monkeypatch):
    stages = [{"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 4}},
              {"name": "code", "data": {"code": 0.75}, "replay": {"fraction": 0.25, "from": ["foundation"]},
               "budget": {"steps": 10}}]
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, stages,
                                          forgetting={"watch": "wiki", "threshold": 1.1, "action": "replay"}))
    # wiki looks forgotten at the code stage's last evaluation only (step 10), so the gate acts at its very end
    for name, value in {"SHIFT": "3", "SHIFT_RANKS": "0", "SHIFT_STAGE": "code", "SHIFT_STEPS": "10"}.items():
        monkeypatch.setenv(f"SYLLABUS_FAULT_EVAL_{name}", value)
    run_plan(plan, tmp_path / "run")
    fired = records(tmp_path / "run", event="forgetting")
    assert [(e["stage"], e["step"]) for e in fired] == [("code", 10)]
    mix = records(tmp_path / "run", event="data", stage="code")[-1]["mix"]
    total = sum(row["tokens"] for row in mix.values())
    report = (tmp_path / "run" / "report.md").read_text()
    for source, row in mix.items():
        line = re.search(rf"^\| code \| {source} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d,]+) \|$",
                         report, re.M)
        assert line, report
        planned, target, realized, since, tokens = line.groups()
        assert int(tokens.replace(",", "")) == row["tokens"]
        assert float(realized) == pytest.approx(row["tokens"] / total, abs=5e-4)  # the whole stage's tokens
        assert float(planned) == {"code": 0.75, "wiki": 0.25}[source]
    assert float(re.search(r"^\| code \| wiki \| [\d.]+ \| ([\d.]+) \|", report, re.M).group(1)) > 0.25  # raised
    assert mix["code"]["tokens"] > 0 and mix["wiki"]["tokens"] > 0
