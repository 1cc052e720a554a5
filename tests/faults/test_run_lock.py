"""Two runs pointed at the same folder: the second is refused at once (exit 2, one clear line) before it writes
anything, and the first goes on unharmed."""

import signal

import pytest

from syllabus.train import checkpoint as ckpt
from tests.faults.harness import (checkpoint_steps, last_logged_step, pretrain_argv, signal_and_wait, start,
                                  step_losses, syllabus, wait_until)

pytestmark = pytest.mark.slow


def test_second_run_on_the_same_folder_is_refused_and_the_first_is_unharmed(code_corpus, code_tokenizer, tmp_path):
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path, "--max-steps", "100000", "--save-interval", "1000")
    first = start(argv)
    assert wait_until(first, lambda: last_logged_step(tmp_path) >= 1)
    config_before = (tmp_path / "run_config.yaml").read_text()
    second = syllabus(argv + ["--resume", "auto", "--seed", "7"])
    assert second.returncode == 2
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert lines == [f"syllabus pretrain: {tmp_path}: another run (pid {first.pid}) is using this folder"]
    assert (tmp_path / "run_config.yaml").read_text() == config_before
    assert first.poll() is None, "the first run did not survive the second"
    code, err = signal_and_wait(first, signal.SIGTERM)
    assert code == 0, err[-2000:]
    (saved,) = checkpoint_steps(tmp_path / "checkpoints")
    assert ckpt.verify_checkpoint(tmp_path / "checkpoints" / f"step_{saved}") is None
    assert sorted(step_losses(tmp_path)) == list(range(1, saved + 1))  # every step logged once, none by the second
