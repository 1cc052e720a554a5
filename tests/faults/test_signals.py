"""SIGTERM / SIGINT: the run finishes the step it is in, checkpoints it, exits 0, and resumes exactly."""

import signal

import pytest

from tests.faults.conftest import PRETRAIN_STEPS, same_run
from tests.faults.harness import (checkpoint_steps, last_logged_step, ok, pretrain_argv, signal_and_wait, start,
                                  step_losses, wait_until)
from tests.plan.conftest import run_argv

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_pretrain_stops_with_a_checkpoint_within_one_step_and_resumes_exactly(
        sig, pretrain_reference, code_corpus, code_tokenizer, tmp_path):
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path, "--max-steps", str(PRETRAIN_STEPS),
                         "--save-interval", "1000", "--resume", "auto")
    proc = start(argv)
    assert wait_until(proc, lambda: last_logged_step(tmp_path) >= 3)
    seen = last_logged_step(tmp_path)
    code, err = signal_and_wait(proc, sig)
    assert code == 0, err[-2000:]
    (saved,) = checkpoint_steps(tmp_path / "checkpoints")
    assert seen <= saved <= seen + 1 and saved == last_logged_step(tmp_path)  # the step in flight, no more
    assert f"{sig.name} received" in err
    done = ok(argv)
    assert f"resumed from {tmp_path / 'checkpoints' / f'step_{saved}'} at step {saved}" in done.stderr
    assert step_losses(tmp_path) == pretrain_reference


def test_plan_sigterm_then_sigint_each_checkpoint_exit_zero_and_the_run_resumes_exactly(
        plan_file, plan_reference, tmp_path):
    out = tmp_path / "run"
    expected_resume = None
    for sig, stage, at in ((signal.SIGTERM, "one", 3), (signal.SIGINT, "two", 3)):
        proc = start(run_argv(plan_file, out))
        assert wait_until(proc, lambda: last_logged_step(out, stage) >= at)
        seen = last_logged_step(out, stage)
        code, err = signal_and_wait(proc, sig)
        assert code == 0, err[-2000:]
        if expected_resume:
            assert expected_resume in err  # the second run continued stage one, not a fresh start
        index = 1 if stage == "one" else 2
        folder = out / "stages" / f"{index}-{stage}" / "checkpoints"
        saved = checkpoint_steps(folder)[-1]
        assert seen <= saved <= seen + 1 and saved == last_logged_step(out, stage)
        expected_resume = f"resumed from {folder / f'step_{saved}'} at step {saved}"
    done = ok(run_argv(plan_file, out))
    assert expected_resume in done.stderr
    same_run(out, plan_reference)
