"""A second Ctrl-C stops at once: the first asks for a checkpoint and a clean stop; a second one while that
checkpoint is being written ends the process within seconds (exit 130), leaving no half-written folder."""

import signal
import time

import pytest

from tests.faults.harness import finish, last_logged_step, pretrain_argv, start, wait_until

pytestmark = pytest.mark.slow
SLOW_EVERY_SAVE = {"SYLLABUS_FAULT_SLOW_SAVE_STEPS": ",".join(str(s) for s in range(1, 200)),
                   "SYLLABUS_FAULT_SLOW_SAVE_SECONDS": "60"}


def test_a_second_sigint_during_the_stop_checkpoint_stops_at_once(code_corpus, code_tokenizer, tmp_path):
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path, "--max-steps", "150", "--save-interval", "1000")
    proc = start(argv, env=SLOW_EVERY_SAVE)
    assert wait_until(proc, lambda: last_logged_step(tmp_path) >= 2)
    proc.send_signal(signal.SIGINT)
    assert wait_until(proc, lambda: any((tmp_path / "checkpoints").glob(".tmp-step_*")))  # the stop save is writing
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc, timeout=30)
    assert time.monotonic() - sent < 15, "the second SIGINT waited for the 60 s save"
    assert code == 130 and "interrupted" in err, (code, err[-2000:])
    assert "SIGINT received: finishing this step" in err
    assert not list((tmp_path / "checkpoints").glob("*step_*"))  # the half-written folder was removed
