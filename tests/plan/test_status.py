"""``syllabus status RUN`` in a subprocess, on a plan that is paused, running (another process) and finished:
per stage steps / budget, tokens, rate and ETA, last evaluation, gate firings with their action; ``--watch``
refreshes until the run ends."""

import re
import subprocess
import sys

import pytest

from tests.faults.harness import ENV, finish, metric_records, ok, start, wait_until
from tests.plan.conftest import make_plan, run_argv, write_plan

pytestmark = pytest.mark.slow


def status(run_dir, *extra, timeout=120) -> str:
    done = subprocess.run([sys.executable, "-m", "syllabus", "status", str(run_dir), *extra], capture_output=True,
                          text=True, timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def gate_plan(corpus, tokenizer) -> dict:
    """Stage two trains hard on code (LR 3e-2): wiki perplexity rises past 1.1x and the gate replays wiki."""
    stages = [{"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 6}, "lr": {"peak": 2e-3, "warmup": 2}},
              {"name": "code", "data": {"code": 0.9, "wiki": 0.1}, "budget": {"steps": 12},
               "lr": {"peak": 3e-2, "warmup": 1}}]
    plan = make_plan(corpus, tokenizer, stages, forgetting={"watch": "wiki", "threshold": 1.1, "action": "replay"})
    plan["defaults"].update({"save_interval": 4, "device": "cpu"})
    plan["evaluation"].update({"every": 3, "batches": 1, "perplexity": ["wiki"]})
    return plan


def test_status_of_a_paused_a_running_and_a_finished_plan(demo_corpus, demo_tokenizer, tmp_path):
    plan = write_plan(tmp_path, gate_plan(demo_corpus, demo_tokenizer))
    out = tmp_path / "run"
    ok(run_argv(plan, out, "--pause-after", "foundation"))
    paused = status(out)
    assert "paused after stage 'foundation'" in paused
    assert re.search(r"1\. foundation\s+done\s+step 6/6\s+[\d,]+ tokens", paused), paused
    assert "end of stage: ppl/wiki" in paused
    assert re.search(r"2\. code\s+not started\s+step 0/12", paused), paused

    slow = {"SYLLABUS_FAULT_SLOW_SAVE_STEPS": "8", "SYLLABUS_FAULT_SLOW_SAVE_SECONDS": "6",
            # wiki looks forgotten at stage two's step-3 evaluation, whatever the harsh LR did by then
            "SYLLABUS_FAULT_EVAL_SHIFT": "3", "SYLLABUS_FAULT_EVAL_SHIFT_RANKS": "0",
            "SYLLABUS_FAULT_EVAL_SHIFT_STAGE": "code", "SYLLABUS_FAULT_EVAL_SHIFT_STEPS": "3"}
    proc = start(run_argv(plan, out), env=slow)  # holds still while writing stage two's step-8 checkpoint
    assert wait_until(proc, lambda: any((out / "stages" / "2-code" / "checkpoints").glob(".tmp-step_8-*")))
    running = status(out)
    assert f"running (pid {proc.pid})" in running, running
    assert re.search(r"2\. code\s+started\s+step 8/12\s+[\d,]+ tokens\s+[\d,]+ tok/s\s+eta \d", running), running
    assert "last evaluation (step 6): loss" in running
    assert re.search(r"gate at step \d+: wiki perplexity [\d.]+ is [\d.]+x its reference [\d.]+ -> replay "
                     r"\(weights code [\d.]+, wiki [\d.]+\)", running), running
    watched = status(out, "--watch", "--interval", "0.5")  # returns once the run has ended
    assert finish(proc)[0] == 0
    assert watched.count("plan 'test-plan'") >= 2 and watched.rstrip().endswith(f"report: {out / 'report.md'}")
    assert "running (pid" in watched

    finished = status(out)
    assert f"plan 'test-plan' in {out}: finished" in finished
    assert re.search(r"2\. code\s+done\s+step 12/12", finished), finished
    fired = [r for r in metric_records(out) if r.get("event") == "forgetting"]
    assert finished.count("gate at step") == len(fired) > 0
