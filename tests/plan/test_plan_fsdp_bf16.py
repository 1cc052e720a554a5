"""A two-stage plan under FSDP2 with bf16 compute on 2 gloo ranks, whose stage ends run generation tasks
(``arithmetic``, ``gsm8k``): it runs to the end, and a SIGKILL of both ranks mid-stage resumes exactly.

Outside a forward FSDP2's parameters are the fp32 shards while k/v are computed in bf16, so a KV cache sized
from the parameters' dtype made every generation task fail at the first stage end."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.distributed.launch import torchrun_argv, worker_pids
from tests.plan.conftest import losses, make_plan, records, write_plan

pytestmark = pytest.mark.slow

STAGES = [
    {"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 3}, "lr": {"peak": 2e-3, "warmup": 1}},
    {"name": "math", "data": {"math": 0.8}, "replay": {"fraction": 0.2, "from": ["foundation"]},
     "budget": {"steps": 4}, "lr": {"peak": 1e-3, "warmup": 1}},
]


@pytest.fixture(scope="module")
def plan_path(demo_corpus, demo_tokenizer, tmp_path_factory):
    plan = make_plan(demo_corpus, demo_tokenizer, STAGES)
    plan["defaults"].update({"micro_batch_size": 2, "save_interval": 2, "device": "cpu", "strategy": "fsdp",
                             "mixed_precision": "bf16", "dist_timeout_seconds": 60})
    plan["evaluation"].update({"every": 100, "tasks": ["arithmetic", "gsm8k"], "limit": 2, "batches": 1})
    return write_plan(tmp_path_factory.mktemp("fsdp_bf16_plan"), plan)


def argv(plan_path, out) -> list[str]:
    return torchrun_argv(2, ["-m", "syllabus", "run", str(plan_path), "--out", str(out)])


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def finish(plan_path, out) -> subprocess.CompletedProcess:
    done = subprocess.run(argv(plan_path, out), capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def task_scores(run_dir) -> dict[str, dict]:
    return {r["stage"]: {k: v for k, v in r.items() if k.startswith(("arithmetic/", "gsm8k/"))
                         and not k.endswith("/seconds")}
            for r in records(run_dir, event="stage_end")}


@pytest.fixture(scope="module")
def straight(plan_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(plan_path, out)
    return out


def test_generation_tasks_run_at_every_stage_end_under_fsdp_bf16(straight):
    assert [r["stage"] for r in records(straight, event="stage_end")] == ["foundation", "math"]
    scores = task_scores(straight)
    for stage in ("foundation", "math"):
        assert {"arithmetic/acc", "gsm8k/exact_match"} <= scores[stage].keys(), scores[stage]
    assert {r["chosen"] for r in records(straight, event="precision")} == {"bf16"}


def test_sigkill_of_both_ranks_mid_stage_resumes_exactly(plan_path, straight, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(argv(plan_path, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    checkpoint = killed / "stages" / "2-math" / "checkpoints" / "step_2"
    deadline = time.time() + 400
    while not (checkpoint / "manifest.json").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "stage 2 never saved step 2"
        time.sleep(0.01)
    for pid in worker_pids(proc.pid).values():  # both ranks, then the launcher
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(timeout=30)
    assert "math" not in [r["stage"] for r in records(killed, event="stage_end")]
    result = finish(plan_path, killed)
    assert "resumed from" in result.stderr and "2-math/checkpoints/step_" in result.stderr
    assert losses(killed) == losses(straight)
    assert task_scores(killed) == task_scores(straight)
