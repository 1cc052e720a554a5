"""Per-stage tasks, tasks inside a stage, and decision points, run end to end on the demo corpus."""

import json
import signal
import struct
import subprocess

import pytest

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from syllabus.train.schedule import lr_at
from tests.plan.conftest import losses, make_plan, records, run_argv, write_plan
from tests.train.runs import run, start_and_signal

pytestmark = pytest.mark.slow

LR = {"peak": 2e-3, "warmup": 1}


def evals(run_dir):
    return [json.loads(line) for line in open(run_dir / "evals.jsonl")]


@pytest.fixture(scope="module")
def tasks_run(demo_corpus, demo_tokenizer, tmp_path_factory):
    stages = [
        {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 6}, "lr": LR,
         "evaluation": {"tasks": ["arithmetic"], "tasks_every": 2, "limit": 8}},
        {"name": "two", "data": {"code": 1.0}, "budget": {"steps": 4}, "lr": LR,
         "evaluation": {"replace": True, "perplexity": ["code"]},
         "expect": {"ppl": {"code": "< 1.01"}, "on_miss": "extend", "extend": {"steps": 2, "times": 2}}},
    ]
    out = tmp_path_factory.mktemp("decisions") / "run"
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, stages))
    return run_plan(plan, out), out


def test_stage_tasks_run_where_declared_and_every_n_steps(tasks_run):
    summary, run_dir = tasks_run
    assert summary["status"] == "finished"
    rows = evals(run_dir)
    with_tasks = [(r["stage"], r["step"], r.get("kind")) for r in rows if "arithmetic/acc" in r]
    assert with_tasks == [("one", 2, "in_stage"), ("one", 4, "in_stage"), ("one", 6, None)]  # never in "two"
    assert all(r["arithmetic/n"] == 8 and "arithmetic/acc_stderr" in r for r in rows if "arithmetic/acc" in r)
    assert not any("ppl/wiki" in r for r in rows if r["stage"] == "two")  # replace: true drops the plan's wiki
    assert len(records(run_dir, event="tasks")) == 2  # the same scores for TensorBoard / W&B
    data = (run_dir / "task_scores.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 100
    assert "![Task scores over the run](task_scores.png)" in (run_dir / "report.md").read_text()


def test_in_stage_tasks_leave_training_unchanged(tasks_run, demo_corpus, demo_tokenizer, tmp_path):
    """Evaluation draws no training randomness: stage one trains the same without its tasks."""
    _, run_dir = tasks_run
    plain = [{"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 6}, "lr": LR}]
    assert run_plan(validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, plain)), tmp_path / "run")
    ours = {k: v for k, v in losses(run_dir).items() if k[0] == "one"}
    assert ours == losses(tmp_path / "run") and len(ours) == 6


def test_unreachable_target_extends_k_times_then_continues(tasks_run):
    _, run_dir = tasks_run
    state = json.loads((run_dir / "run_state.json").read_text())
    assert [(d["stage"], d["decision"], d["step"]) for d in state["decisions"]] == [
        ("two", "extend", 4), ("two", "extend", 6), ("two", "continue_after_extensions", 8)]
    assert state["extensions"] == {"two": 2} and state["completed"] == ["one", "two"]
    assert [r["decision"] for r in records(run_dir, event="decision")] == ["extend", "extend",
                                                                          "continue_after_extensions"]
    steps = {r["step"]: r for r in records(run_dir, stage="two") if "loss" in r}
    assert sorted(steps) == list(range(1, 9))
    # The LR schedule is re-planned for each new end: steps after an extension follow lr_at(total=the new end).
    for step, total in ((5, 6), (7, 8), (8, 8)):
        assert steps[step]["lr"] == pytest.approx(lr_at(step - 1, peak=2e-3, minimum=2e-4, warmup=1, total=total,
                                                        schedule="cosine"), rel=1e-6)
    report = (run_dir / "report.md").read_text()
    assert "## Decisions" in report and "extended by 2 steps to 8 (extension 2 of 2)" in report
    assert "still missed after 2 extensions; continued" in report


def test_on_miss_stop_ends_the_run_with_a_message_and_exit_1(demo_corpus, demo_tokenizer, tmp_path):
    stages = [{"name": "only", "data": {"wiki": 1.0}, "budget": {"steps": 2}, "lr": LR,
               "expect": {"ppl": {"wiki": "< 1.01"}, "on_miss": "stop"}},
              {"name": "never", "data": {"code": 1.0}, "budget": {"steps": 2}, "lr": LR}]
    plan = write_plan(tmp_path, make_plan(demo_corpus, demo_tokenizer, stages))
    done = subprocess.run(run_argv(plan, tmp_path / "run"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "stage 'only' missed its expectations (ppl/wiki = " in last and "on_miss: stop" in last
    assert "Traceback" not in done.stderr
    state = json.loads((tmp_path / "run" / "run_state.json").read_text())
    assert state["decisions"][-1]["decision"] == "stop" and state["completed"] == []
    assert not (tmp_path / "run" / "stages" / "2-never").exists()


EXTENDING = [
    {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 4}, "lr": LR,
     "expect": {"ppl": {"wiki": "< 1.01"}, "on_miss": "extend", "extend": {"steps": 3, "times": 2}}},
    {"name": "two", "data": {"code": 1.0}, "budget": {"steps": 3}, "lr": LR},
]


def test_sigkill_during_an_extension_resumes_with_identical_losses(demo_corpus, demo_tokenizer, tmp_path):
    plan = make_plan(demo_corpus, demo_tokenizer, EXTENDING)
    plan["evaluation"]["perplexity"] = ["wiki"]
    path = write_plan(tmp_path, plan)
    straight = tmp_path / "straight"
    run(run_argv(path, straight))
    # step_5 is written during the first extension (4 -> 7): kill there, run again.
    killed = tmp_path / "killed"
    code = start_and_signal(run_argv(path, killed), killed / "stages/1-one/checkpoints/step_5/manifest.json",
                            signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert json.loads((killed / "run_state.json").read_text())["extensions"] == {"one": 1}
    run(run_argv(path, killed))
    assert losses(killed) == losses(straight)
    assert max(step for stage, step in losses(straight) if stage == "one") == 10
    decisions = [d["decision"] for d in json.loads((killed / "run_state.json").read_text())["decisions"]]
    assert decisions == ["extend", "extend", "continue_after_extensions"]


def test_on_miss_pause_finishes_the_stage_then_pauses(demo_corpus, demo_tokenizer, tmp_path):
    stages = [{"name": "first", "data": {"wiki": 1.0}, "budget": {"steps": 2}, "lr": LR,
               "expect": {"ppl": {"wiki": "< 1.01"}, "on_miss": "pause"}},
              {"name": "second", "data": {"code": 1.0}, "budget": {"steps": 2}, "lr": LR}]
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, stages))
    summary = run_plan(plan, tmp_path / "run")
    assert (summary["status"], summary["stage"]) == ("paused", "first")
    state = json.loads((tmp_path / "run" / "run_state.json").read_text())
    assert state["completed"] == ["first"] and state["decisions"][0]["decision"] == "pause"
    assert "missed; paused the run" in (tmp_path / "run" / "report.md").read_text()
    assert run_plan(plan, tmp_path / "run")["status"] == "finished"  # running again goes on with the next stage
