"""``async_save: true``: the periodic checkpoint is written in the background while training goes on; a SIGKILL
during that write leaves the previous checkpoint the newest valid one, and the rerun resumes from it exactly; a
SIGTERM during it waits for the write to finish, saves, exits 0 and resumes exactly."""

import signal

import pytest

from syllabus.checkpoints import verify_checkpoint
from tests.faults.conftest import PRETRAIN_STEPS
from tests.faults.harness import (checkpoint_steps, finish, metric_records, ok, pretrain_argv, start, step_losses,
                                  wait_until)

pytestmark = pytest.mark.slow
SLOW_AT_8 = {"SYLLABUS_FAULT_SLOW_SAVE_STEPS": "8", "SYLLABUS_FAULT_SLOW_SAVE_SECONDS": "30"}


def argv(corpus, tokenizer, out):
    return pretrain_argv(corpus, tokenizer, out, "--max-steps", str(PRETRAIN_STEPS), "--save-interval", "4",
                         "--async-save", "--resume", "auto")


def writing_step_8_while_training(out, pid):
    """The step-8 checkpoint is being written (its folder aside exists) and step 10 has been trained since."""
    return lambda: (any((out / "checkpoints").glob(f".tmp-step_8-{pid}"))
                    and any(r.get("step", 0) >= 10 and "loss" in r for r in metric_records(out)))


def test_sigkill_during_a_background_write_resumes_from_the_previous_checkpoint(
        code_corpus, code_tokenizer, pretrain_reference, tmp_path):
    proc = start(argv(code_corpus, code_tokenizer, tmp_path), env=SLOW_AT_8)
    assert wait_until(proc, writing_step_8_while_training(tmp_path, proc.pid)), finish(proc)[1][-3000:]
    proc.kill()
    assert finish(proc)[0] == -signal.SIGKILL
    assert checkpoint_steps(tmp_path / "checkpoints") == [4]  # step 8 never renamed into place
    logged_before = max(step_losses(tmp_path))
    done = ok(argv(code_corpus, code_tokenizer, tmp_path))
    assert f"resumed from {tmp_path / 'checkpoints' / 'step_4'} at step 4" in done.stderr
    rerun = [r["step"] for r in metric_records(tmp_path) if "loss" in r][logged_before:]
    assert rerun[0] == 5  # the rerun's first step follows the checkpoint: a fresh start would log step 1
    assert step_losses(tmp_path) == pretrain_reference


def test_sigterm_during_a_background_write_finishes_it_and_resumes_exactly(
        code_corpus, code_tokenizer, pretrain_reference, tmp_path):
    proc = start(argv(code_corpus, code_tokenizer, tmp_path), env={**SLOW_AT_8,
                                                                  "SYLLABUS_FAULT_SLOW_SAVE_SECONDS": "4"})
    assert wait_until(proc, writing_step_8_while_training(tmp_path, proc.pid)), finish(proc)[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 0, err[-3000:]
    saved = checkpoint_steps(tmp_path / "checkpoints")
    assert 8 in saved and verify_checkpoint(tmp_path / "checkpoints" / "step_8") is None  # the write finished
    stopped_at = max(saved)
    assert 10 <= stopped_at < PRETRAIN_STEPS
    done = ok(argv(code_corpus, code_tokenizer, tmp_path))
    assert f"resumed from {tmp_path / 'checkpoints' / f'step_{stopped_at}'} at step {stopped_at}" in done.stderr
    assert step_losses(tmp_path) == pretrain_reference
