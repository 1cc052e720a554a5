"""FSDP2 with ``async_save``: ``torch.distributed.checkpoint.async_save`` writes the shards in the background on
2 CPU ranks; the run matches DDP, and a run resumed from a background-written checkpoint matches it exactly."""

import shutil

import pytest

from syllabus.checkpoints import verify_checkpoint
from tests.distributed.conftest import STEPS
from tests.distributed.launch import assert_close, pretrain_args, records, run, step_values, torchrun_argv

pytestmark = pytest.mark.slow


def fsdp_async_args(corpus, tokenizer, out, *extra):
    return pretrain_args(corpus, tokenizer, out, "--strategy", "fsdp", "--batch-size", "2",
                         "--gradient-accumulation-steps", "2", "--max-steps", str(STEPS), "--save-interval", "4",
                         "--async-save", "--eval-interval", str(STEPS), *extra)


def test_fsdp_async_checkpoints_resume_exactly_on_two_ranks(code_corpus, code_tokenizer, ddp_reference, tmp_path,
                                                           monkeypatch):
    straight = tmp_path / "straight"
    monkeypatch.setenv("SYLLABUS_FAULT_SLOW_SAVE_STEPS", "4")  # step 4's write lasts past steps 5 and 6
    monkeypatch.setenv("SYLLABUS_FAULT_SLOW_SAVE_SECONDS", "2")
    run(torchrun_argv(2, fsdp_async_args(code_corpus, code_tokenizer, straight)))
    monkeypatch.delenv("SYLLABUS_FAULT_SLOW_SAVE_STEPS")
    assert_close(step_values(straight), step_values(ddp_reference), range(1, STEPS + 1), 1e-5)
    step_4 = straight / "checkpoints" / "step_4"
    assert (step_4 / "sharded" / ".metadata").is_file() and verify_checkpoint(step_4) is None
    logged = [(r["step"], r["time"]) for r in records(straight) if "loss" in r]
    manifest_written = (step_4 / "manifest.json").stat().st_mtime
    assert any(step > 4 and when < manifest_written for step, when in logged), "step 4 was not written in the background"

    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(step_4, out / "checkpoints" / "step_4")
    done = run(torchrun_argv(2, fsdp_async_args(code_corpus, code_tokenizer, out, "--resume", "auto")))
    assert f"resumed from {out / 'checkpoints' / 'step_4'} at step 4" in done.stderr
    assert min(r["step"] for r in records(out) if "loss" in r) == 5
    resumed, reference = step_values(out), step_values(straight)
    assert [resumed[s] for s in range(5, STEPS + 1)] == [reference[s] for s in range(5, STEPS + 1)]
