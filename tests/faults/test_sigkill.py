"""SIGKILL at 10 points of a three-stage plan, one run folder: each rerun continues, and the per-step losses of
the whole run equal those of an uninterrupted run (fp32, CPU).

The points are drawn from a seeded generator (reproducible) and cover, on purpose: mid-step (a random fraction of a
step after 1-3 steps of the rerun), mid-checkpoint-write (a ``.tmp-step_*`` folder of this process exists),
during evaluation (a new validation record has just been written) and at a stage boundary (a stage's
``final`` alias or its ``stage_end`` record has just appeared).
"""

import json
import random
import signal
import time

import pytest

from syllabus.checkpoints import latest_valid_checkpoint

from tests.faults.conftest import same_run
from tests.faults.harness import finish, metric_records, ok, start, wait_until
from tests.plan.conftest import run_argv

pytestmark = pytest.mark.slow
KINDS = ["mid_step", "mid_save", "evaluation", "boundary"]


def kill_condition(kind: str, out, pid: int, rng: random.Random):
    """A zero-argument predicate that becomes true at the moment to kill."""
    before = metric_records(out)
    if kind == "mid_step":  # a few steps into the rerun, then a fraction of a step (a tiny step takes ~50 ms)
        steps, delay, started = rng.randint(1, 3), rng.uniform(0.0, 0.04), []

        def condition():
            if not started and sum("loss" in r for r in metric_records(out)[len(before):]) >= steps:
                started.append(time.time())
            return bool(started) and time.time() - started[0] >= delay
        return condition
    if kind == "mid_save":
        return lambda: any(out.glob(f"stages/*/checkpoints/.tmp-step_*-{pid}"))
    if kind == "evaluation":
        return lambda: any("val_loss" in r for r in metric_records(out)[len(before):])
    finals = set(out.glob("stages/*/checkpoints/final"))
    if rng.random() < 0.5:
        return lambda: bool(set(out.glob("stages/*/checkpoints/final")) - finals)
    return lambda: any(r.get("event") in ("stage_end", "stage_start") for r in metric_records(out)[len(before):])


def unfinished_stage_checkpoint(out):
    """The checkpoint the next rerun must resume from: the newest valid one of the first unfinished stage."""
    state = out / "run_state.json"
    completed = json.loads(state.read_text())["completed"] if state.exists() else []
    for folder in sorted(out.glob("stages/*-*")):
        if folder.name.split("-", 1)[1] not in completed:
            return latest_valid_checkpoint(folder / "checkpoints")
    return None


def test_sigkill_at_ten_points_then_rerun_gives_identical_losses(plan_file, plan_reference, tmp_path):
    rng = random.Random(20240611)
    out = tmp_path / "run"
    kinds = [KINDS[i % len(KINDS)] for i in range(10)]
    rng.shuffle(kinds)
    landed = []
    for kind in kinds:
        resume_point = unfinished_stage_checkpoint(out)
        proc = start(run_argv(plan_file, out))
        if not wait_until(proc, kill_condition(kind, out, proc.pid, rng), poll=0.0005):
            code, err = finish(proc)
            pytest.fail(f"the run ended (exit {code}) before the {kind} kill point {landed}: {err[-3000:]}")
        proc.kill()
        code, err = finish(proc)
        assert code == -signal.SIGKILL
        if resume_point is not None:  # the rerun continued from it (a fresh start would match the losses too)
            assert f"resumed from {resume_point} " in err, (kind, err[-2000:])
        last = metric_records(out)[-1]
        landed.append(f"{kind}@{last.get('stage')}:{last.get('step')}:{last.get('event', 'loss' if 'loss' in last else 'val')}")
    resume_point = unfinished_stage_checkpoint(out)
    done = ok(run_argv(plan_file, out))
    assert resume_point is None or f"resumed from {resume_point} " in done.stderr
    assert sorted({k.split('@')[0] for k in landed}) == sorted(KINDS)
    same_run(out, plan_reference)
