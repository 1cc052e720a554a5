"""FSDP2 on 2 CPU ranks: the same numbers as DDP (accumulation without reduction on micro-steps, clipping
of sharded gradients), sharded checkpoints that resume exactly, load on one rank and export."""

import json
import math
import shutil

import pytest
import torch

from tests.distributed.conftest import STEPS
from tests.distributed.launch import assert_close, pretrain_args, run, single_argv, step_values, torchrun_argv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fsdp_run(code_corpus, code_tokenizer, tmp_path_factory):
    """2 ranks × micro batch 2 × 2 accumulation steps (the DDP reference's global batch), saves at 6 and 12."""
    out = tmp_path_factory.mktemp("fsdp")
    run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--strategy", "fsdp", "--batch-size", "2",
                                       "--gradient-accumulation-steps", "2", "--max-steps", str(STEPS),
                                       "--save-interval", "6", "--eval-interval", str(STEPS))))
    return out


def resume_from_step_6(fsdp_run, tmp_path):
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(fsdp_run / "checkpoints" / "step_6", out / "checkpoints" / "step_6")
    return out


def test_fsdp_matches_ddp_with_accumulation_and_clipping(fsdp_run, ddp_reference):
    steps = range(1, STEPS + 1)
    assert_close(step_values(fsdp_run), step_values(ddp_reference), steps, 1e-5)
    assert_close(step_values(fsdp_run, "grad_norm"), step_values(ddp_reference, "grad_norm"), steps, 1e-5)
    assert max(step_values(fsdp_run, "grad_norm").values()) > 0.5  # clipping was active


def test_fsdp_checkpoint_is_sharded_and_resumes_exactly_on_two_ranks(fsdp_run, code_corpus, code_tokenizer, tmp_path):
    from syllabus.train.checkpoint import verify_checkpoint

    step_6 = fsdp_run / "checkpoints" / "step_6"
    assert (step_6 / "sharded" / ".metadata").is_file() and not (step_6 / "model.safetensors").exists()
    assert verify_checkpoint(step_6) is None
    out = resume_from_step_6(fsdp_run, tmp_path)
    done = run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--strategy", "fsdp",
                                              "--batch-size", "2", "--gradient-accumulation-steps", "2",
                                              "--max-steps", str(STEPS), "--resume", "auto",
                                              "--eval-interval", str(STEPS))))
    assert f"resumed from {out / 'checkpoints' / 'step_6'} at step 6" in done.stderr
    resumed, straight = step_values(out), step_values(fsdp_run)
    assert [resumed[s] for s in range(7, STEPS + 1)] == [straight[s] for s in range(7, STEPS + 1)]
    assert step_values(out, "val_loss")[STEPS] == step_values(fsdp_run, "val_loss")[STEPS]


def test_fsdp_checkpoint_resumes_on_one_rank(fsdp_run, code_corpus, code_tokenizer, tmp_path):
    out = resume_from_step_6(fsdp_run, tmp_path)
    done = run(single_argv(pretrain_args(code_corpus, code_tokenizer, out, "--strategy", "fsdp",
                                         "--batch-size", "8", "--max-steps", str(STEPS), "--resume", "auto")))
    assert f"resumed from {out / 'checkpoints' / 'step_6'} at step 6" in done.stderr
    assert_close(step_values(out), step_values(fsdp_run), range(7, STEPS + 1), 1e-5)


def test_fsdp_checkpoint_loads_in_one_process_with_the_same_val_loss_and_exports(fsdp_run, code_corpus, tmp_path):
    from syllabus.data import iter_eval_batches
    from syllabus.export import export_checkpoint
    from syllabus.train.checkpoint import load_model

    model, tokenizer = load_model(fsdp_run)  # the run folder: its newest valid checkpoint, step 12
    loss_sum, n_tokens = 0.0, 0
    with torch.no_grad():
        for batch in iter_eval_batches(str(code_corpus), tokenizer, seq_len=64, batch_size=2, max_batches=8):
            n = int((batch["labels"] != -100).sum())
            loss_sum += float(model(batch["input_ids"], batch["labels"])) * n
            n_tokens += n
    assert math.isclose(loss_sum / n_tokens, step_values(fsdp_run, "val_loss")[STEPS], abs_tol=1e-5)
    exported = export_checkpoint(fsdp_run / "checkpoints" / "final", tmp_path / "hf")
    assert (exported / "model.safetensors").is_file()
    assert json.loads((exported / "config.json").read_text())["hidden_size"] == 64


def test_a_torn_sharded_checkpoint_is_skipped(fsdp_run, tmp_path):
    from syllabus.train.checkpoint import latest_valid_checkpoint

    root = tmp_path / "checkpoints"
    for step in (6, 12):
        shutil.copytree(fsdp_run / "checkpoints" / f"step_{step}", root / f"step_{step}")
    (root / "step_12" / "sharded" / "__1_0.distcp").unlink()
    assert latest_valid_checkpoint(root) == root / "step_6"


def test_fsdp_bf16_with_activation_checkpointing_trains_and_checkpoints(code_corpus, code_tokenizer, tmp_path):
    run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, tmp_path, "--strategy", "fsdp", "--batch-size", "2",
                                       "--gradient-accumulation-steps", "2", "--max-steps", "3",
                                       "--mixed-precision", "bf16", "--gradient-checkpointing", "true")))
    losses = step_values(tmp_path)
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert (tmp_path / "checkpoints" / "final" / "sharded" / ".metadata").is_file()


def test_fsdp_on_one_torchrun_rank_shards_over_a_one_rank_mesh(code_corpus, code_tokenizer, tmp_path):
    """One GPU under torchrun runs the FSDP2 path (bench/gpu_check.sh's check); without torchrun it stays single."""
    run(torchrun_argv(1, pretrain_args(code_corpus, code_tokenizer, tmp_path, "--strategy", "fsdp", "--batch-size", "2",
                                       "--max-steps", "2")))
    assert (tmp_path / "checkpoints" / "final" / "sharded" / ".metadata").is_file()
