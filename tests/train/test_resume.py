"""Exact resume: a run stopped and continued logs the same per-step losses as one that never stopped."""

import signal

import pytest

from tests.train.runs import pretrain_argv, run, start_and_signal, step_losses

pytestmark = pytest.mark.slow
WIDER = ["--set", "model.hidden_size=128", "--set", "model.intermediate_size=384", "--batch-size", "8"]


@pytest.fixture(scope="module")
def straight(code_corpus, code_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run(pretrain_argv(code_corpus, code_tokenizer, out, "--max-steps", "40", *WIDER))
    return step_losses(out)


def test_sigkill_after_step_20_checkpoint_then_resume(straight, code_corpus, code_tokenizer, tmp_path):
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path, "--max-steps", "40", "--save-interval", "20",
                         "--resume", "auto", *WIDER)
    code = start_and_signal(argv, tmp_path / "checkpoints" / "step_20" / "manifest.json", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (tmp_path / "checkpoints" / "step_40").exists(), "the run finished before it was killed"
    done = run(argv)
    assert f"resumed from {tmp_path / 'checkpoints' / 'step_20'} at step 20" in done.stderr  # not a fresh start
    resumed = step_losses(tmp_path)
    assert [resumed[s] for s in range(21, 41)] == [straight[s] for s in range(21, 41)]


def test_sigterm_checkpoints_exits_zero_and_resumes_exactly(straight, code_corpus, code_tokenizer, tmp_path):
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path, "--max-steps", "40", "--save-interval", "1000",
                         "--resume", "auto", *WIDER)
    code = start_and_signal(argv, tmp_path / "metrics.jsonl", signal.SIGTERM)
    assert code == 0
    saved = sorted((tmp_path / "checkpoints").glob("step_*"))
    assert len(saved) == 1 and int(saved[0].name.split("_")[1]) < 40
    done = run(argv)
    assert f"resumed from {saved[0]} at step {saved[0].name.split('_')[1]}" in done.stderr  # not a fresh start
    resumed = step_losses(tmp_path)
    assert [resumed[s] for s in range(1, 41)] == [straight[s] for s in range(1, 41)]
