"""A single-folder checkpoint (one process, ``model.safetensors`` + optimizer state) continued under FSDP2 on
2 CPU ranks: the weights and the optimizer moments are sharded on load, and the run goes on as DDP would."""

import shutil

import pytest

from tests.distributed.conftest import STEPS
from tests.distributed.launch import assert_close, pretrain_args, records, run, single_argv, step_values, torchrun_argv

pytestmark = pytest.mark.slow


def test_a_single_folder_checkpoint_continues_under_fsdp2(ddp_reference, code_corpus, code_tokenizer, tmp_path):
    single = tmp_path / "single"
    run(single_argv(pretrain_args(code_corpus, code_tokenizer, single, "--batch-size", "8",
                                  "--max-steps", str(STEPS), "--save-interval", "6")))
    step_6 = single / "checkpoints" / "step_6"
    assert (step_6 / "model.safetensors").is_file() and not (step_6 / "sharded").exists()
    out = tmp_path / "fsdp"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(step_6, out / "checkpoints" / "step_6")
    done = run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--strategy", "fsdp",
                                              "--batch-size", "4", "--max-steps", str(STEPS), "--resume", "auto")))
    assert f"resumed from {out / 'checkpoints' / 'step_6'} at step 6" in done.stderr
    assert min(r["step"] for r in records(out) if "loss" in r) == 7
    # the optimizer moments came along: a fresh AdamW state would put step 7's loss and grad norm off the DDP run
    assert_close(step_values(out), step_values(ddp_reference), range(7, STEPS + 1), 1e-5)
    assert_close(step_values(out, "grad_norm"), step_values(ddp_reference, "grad_norm"), range(7, STEPS + 1), 1e-5)
