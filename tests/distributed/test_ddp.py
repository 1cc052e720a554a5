"""DDP on 2 CPU ranks: same numbers as one rank with the global batch, one stop for all, no data repeated or
skipped across a world-size change, and a crashed rank ends the run instead of hanging it."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.distributed.conftest import STEPS
from tests.distributed.launch import (assert_close, logged_step, pretrain_args, records, run, single_argv,
                                      start_and_signal_rank, step_values, torchrun_argv)

pytestmark = pytest.mark.slow


def test_two_ranks_of_four_match_one_rank_of_eight(ddp_reference, code_corpus, code_tokenizer, tmp_path):
    run(single_argv(pretrain_args(code_corpus, code_tokenizer, tmp_path, "--batch-size", "8",
                                  "--max-steps", str(STEPS))))
    steps = range(1, STEPS + 1)
    assert_close(step_values(tmp_path), step_values(ddp_reference), steps, 1e-5)
    assert_close(step_values(tmp_path, "grad_norm"), step_values(ddp_reference, "grad_norm"), steps, 1e-5)
    assert step_values(tmp_path, "tokens_seen") == step_values(ddp_reference, "tokens_seen")


def test_sigterm_to_one_rank_stops_both_then_resumes_on_one_and_on_two_ranks(ddp_reference, code_corpus,
                                                                              code_tokenizer, tmp_path):
    stopped = tmp_path / "stopped"
    args = ["--batch-size", "4", "--max-steps", str(STEPS), "--save-interval", "1000", "--resume", "auto"]
    code, err = start_and_signal_rank(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, stopped, *args)),
                                      logged_step(stopped, 2), rank=1, sig=signal.SIGTERM)
    assert code == 0, err[-3000:]
    saved = sorted((stopped / "checkpoints").glob("step_*"))
    assert len(saved) == 1, saved
    at = int(saved[0].name.split("_")[1])
    assert 2 <= at < STEPS, "the run finished before the signal arrived"
    assert max(step_values(stopped)) == at  # rank 0, not signalled, stopped at the same step and saved it

    reference = step_values(ddp_reference)
    for ranks, batch in ((2, "4"), (1, "8")):
        out = tmp_path / f"resumed_on_{ranks}"
        shutil.copytree(stopped, out)
        resume = pretrain_args(code_corpus, code_tokenizer, out, *args)
        resume[resume.index("--batch-size") + 1] = batch  # the same global batch
        done = run(torchrun_argv(2, resume) if ranks == 2 else single_argv(resume))
        assert f"resumed from {out / 'checkpoints' / f'step_{at}'} at step {at}" in done.stderr
        resumed = step_values(out)
        if ranks == 2:  # same world: bit for bit
            assert [resumed[s] for s in range(1, STEPS + 1)] == [reference[s] for s in range(1, STEPS + 1)]
        else:  # one rank reduces in another order: equal to float rounding, and the same rows
            assert_close(resumed, reference, range(at + 1, STEPS + 1), 1e-5)
        final = [r for r in records(out) if r.get("event") == "data"][-1]
        want = [r for r in records(ddp_reference) if r.get("event") == "data"][-1]
        assert final["mix"] == want["mix"], "rows were repeated or skipped"


def test_a_crash_on_one_rank_ends_every_rank_with_an_error(code_corpus, code_tokenizer, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYLLABUS_FAULT_CRASH_RANK": "1", "SYLLABUS_FAULT_CRASH_STEP": "3"}
    argv = torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, tmp_path, "--batch-size", "4",
                                          "--max-steps", "50", "--save-interval", "1000"))
    started = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env)
    assert out.returncode != 0
    assert time.monotonic() - started < 60, "the surviving rank hung"
    assert "fault injected after step 3" in out.stderr
    assert max(step_values(tmp_path)) <= 4  # no rank went on training alone
    assert not list((tmp_path / "checkpoints").glob("step_*"))
