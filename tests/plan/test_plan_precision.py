"""Each stage's precision, as its trainer resolved ``mixed_precision: auto``, is written to ``run_state.json``
(capability and matmul peaks injected: nothing is timed)."""

import json

import pytest

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import make_plan, records
from tests.train.test_precision import EPYC_BF16, XEON_NO_BF16, inject

pytestmark = pytest.mark.slow

STAGES = [{"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 2}},
          {"name": "two", "data": {"code": 1.0}, "budget": {"steps": 2}}]


def test_each_stage_precision_is_in_run_state(monkeypatch, demo_corpus, demo_tokenizer, tmp_path):
    """Stage one runs on a bf16 machine, stage two (after a pause) on one without bf16: each stage's entry says
    what it chose there and from which peaks, and the first stage's entry is not overwritten."""
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, STAGES,
                                          defaults={"micro_batch_size": 2, "max_seq_length": 32, "log_interval": 1,
                                                    "mixed_precision": "auto"}))
    inject(monkeypatch, native=True, measured=EPYC_BF16)
    assert run_plan(plan, tmp_path, pause_after="one")["status"] == "paused"
    inject(monkeypatch, native=False, measured=XEON_NO_BF16)
    assert run_plan(plan, tmp_path)["status"] == "finished"
    state = json.loads((tmp_path / "run_state.json").read_text())
    assert state["precision"] == {
        "one": {"requested": "auto", "chosen": "bf16", "reason": "native bf16 matmul, faster than fp32",
                "peaks": EPYC_BF16},
        "two": {"requested": "auto", "chosen": "fp32", "reason": "no native bf16 matmul on this CPU",
                "peaks": XEON_NO_BF16}}
    # and the kernels each stage computed with, measured for its precision on this machine (train/calibration.py)
    assert set(state["kernels"]) == {"one", "two"}
    assert list(state["kernels"]["one"]["attention"]) == ["attention|bf16|d32|s64"]  # head 32, seq 32
    assert list(state["kernels"]["two"]["attention"]) == ["attention|fp32|d32|s64"]
    events = {r["stage"]: r["chosen"] for r in records(tmp_path, event="precision")}
    assert events == {"one": "bf16", "two": "fp32"}  # the same choice the metrics recorded
