"""Reports and summaries never fail on a value that is missing or not finite: JSON gets null, the page says
"not measured", and a merge with nothing to choose by keeps the final and says why."""

import json
import math

from syllabus.config import validate
from syllabus.config.plan import MergeSpec, PlanConfig
from syllabus.plan.merge import choose_candidate
from syllabus.plan.report import write_report
from syllabus.plan.status import run_status
from syllabus.train.metrics import MetricsLog

PLAN = {"name": "p", "sources": {"small": "data/small"},
        "stages": [{"name": "s", "data": {"small": 1.0}, "merge": {"last": 3}, "expect": {"ppl": {"small": "< 20"}}}],
        "evaluation": {"perplexity": ["small"]}, "forgetting": {"watch": ["small"]}}


def test_non_finite_numbers_are_written_as_json_null(tmp_path):
    log = MetricsLog(tmp_path, filename="evals.jsonl")
    log.log({"stage": "s", "mean_loss": math.inf, "val_loss/small": math.nan, "step": 3})
    log.close()
    row = json.loads((tmp_path / "evals.jsonl").read_text())
    assert row == {"stage": "s", "mean_loss": None, "val_loss/small": None, "step": 3}


def test_a_report_is_written_from_a_merge_with_no_held_out_loss(tmp_path):
    plan = validate(PlanConfig, PLAN)
    (tmp_path / "plan.yaml").write_text(json.dumps(plan.model_dump(by_alias=True)))
    merge = {"step": 3, "stage": "s", "event": "merge", "averaged": ["step_3", "step_2", "step_1"],
             "rule": "best by stage_domains"}
    rows = [{"step": 1, "stage": "s", "loss": 5.0, "tokens_seen": 64, "time": 1.0},
            {"step": 2, "stage": "s", "loss": None, "tokens_seen": 128, "time": 2.0},  # a non-finite step
            {"step": 3, "stage": "s", "val_loss": "inf", "val_loss/small": None, "tokens_seen": 192},
            {**merge, "candidate": "final", "chosen": True, "mean_loss": "inf"},  # as older runs wrote it
            {**merge, "candidate": "merged", "chosen": False, "mean_loss": None},
            {"step": 3, "stage": "s", "event": "forgetting", "domain": "small", "ppl": None, "ratio": "nan",
             "reference_ppl": None, "action": "warn"},
            {"step": 4, "stage": "s", "event": "compile", "compiled": True, "steps_left": 96,
             "expected_saving_seconds": None, "expected_warmup_seconds": "inf", "figures": "measured"},
            {"step": 8, "stage": "s", "event": "compile", "measured_warmup_seconds": 20.04, "measured_speedup": None},
            {"step": 0, "stage": "s", "event": "compile", "compiled": True, "setting": "true"}]
    for name in ("metrics.jsonl", "evals.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = {"completed": ["s"], "started": {"s": {}}, "results": {"s": {"ppl/small": None, "arithmetic/acc": "nan"}},
             "decisions": [{"stage": "s", "step": 3, "decision": "continue", "missed": {"ppl/small": None}}]}
    (tmp_path / "run_state.json").write_text(json.dumps(state))
    text = write_report(plan, tmp_path, state).read_text()
    assert "| s | final | – | best by stage_domains | not measured | yes |" in text
    assert "ppl/small < 20 → not measured" in text and "perplexity not measured" in text
    assert ("- stage s, step 4: compiled the blocks (compile: auto; 96 steps left, expected saving not measured "
            "against a warm-up of not measured, measured figures)") in text
    assert "- stage s, step 8: measured warm-up 20.0 s, speed-up ×not measured" in text
    assert "- stage s, step 0: compiled the blocks (compile: true)" in text
    status, _ = run_status(tmp_path)
    assert "not measured" in status


def test_a_merge_with_nothing_to_choose_by_keeps_the_final_and_says_why():
    spec = MergeSpec(last=3)
    chosen, note = choose_candidate(spec, {"final": math.inf, "merged": math.inf}, ["small"])
    assert chosen == "final" and "no held-out loss measured for either candidate on small" in note
    assert choose_candidate(spec, {"final": 2.0, "merged": 1.5}, ["small"]) == ("merged", None)
    assert choose_candidate(spec, {"final": 2.0, "merged": math.inf}, ["small"])[0] == "final"
    assert choose_candidate(MergeSpec(last=3, choose="merged"), {"final": 1.0, "merged": 2.0}, []) == ("merged", None)
