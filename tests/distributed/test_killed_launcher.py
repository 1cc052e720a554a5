"""``kill -9`` of the torchrun launcher alone (its workers run in a session of their own): the workers end
themselves, an immediate rerun resumes exactly, and a rank of an old run that still lived would refuse the new
run's same rank, so two runs never write one folder."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syllabus.config.errors import ConfigError
from syllabus.train import faults
from syllabus.train.run_lock import RunLock
from tests.distributed.conftest import STEPS
from tests.faults.harness import alive
from tests.distributed.launch import logged_step, pretrain_args, run, step_values, torchrun_argv, worker_pids


def test_a_rank_lock_refuses_the_same_rank_of_a_second_run_while_the_old_one_lives(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom syllabus.train.run_lock import RunLock\n"
                               f"with RunLock({str(tmp_path)!r}, rank=1):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"rank 1 of another run \(pid {holder.pid}\) is using this folder"):
            with RunLock(tmp_path, rank=1):
                pass
        with RunLock(tmp_path, rank=0), RunLock(tmp_path, rank=2):  # other ranks' locks are their own
            pass
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path, rank=1):  # the holder is gone: its lock went with it
        pass


@pytest.mark.slow
def test_sigkill_of_the_launcher_ends_its_workers_and_a_rerun_resumes_exactly(ddp_reference, code_corpus,
                                                                               code_tokenizer, tmp_path):
    out = tmp_path / "run"
    argv = torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--batch-size", "4", "--max-steps",
                                          str(STEPS), "--save-interval", "2", "--resume", "auto"))
    # Each save from step 4 on pauses a second (steps take milliseconds), so the watcher's 0.2 s poll is what
    # ends the workers, not how fast a tiny model happens to train on this machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", faults.SLOW_SAVE_STEPS: "4,6,8,10", faults.SLOW_SAVE_SECONDS: "1"}
    launcher = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers: dict[int, int] = {}
    try:
        deadline = time.time() + 180
        while not logged_step(out, 3)():
            assert launcher.poll() is None and time.time() < deadline, "the run ended before it was killed"
            time.sleep(0.01)
        workers = worker_pids(launcher.pid)
        assert sorted(workers) == [0, 1]
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher only
        launcher.wait()
        at_kill = max(step_values(out))
        deadline = time.time() + 15
        while any(alive(pid) for pid in workers.values()) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers.values()), "the workers outlived their launcher"
    finally:
        launcher.kill()
        for pid in workers.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    # the workers stopped with their launcher (left alone they would train on to step STEPS and exit)
    assert max(step_values(out)) <= min(at_kill + 2, STEPS - 1), "the workers went on training after the kill"
    done = run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--batch-size", "4", "--max-steps",
                                              str(STEPS), "--save-interval", "2", "--resume", "auto")), timeout=180)
    assert "resumed from" in done.stderr
    reference = step_values(ddp_reference)
    assert [step_values(out)[s] for s in range(1, STEPS + 1)] == [reference[s] for s in range(1, STEPS + 1)]
