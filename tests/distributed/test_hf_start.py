"""2 gloo ranks start from a Hugging Face checkpoint: under FSDP2 each rank reads only its slices into a model
built on the meta device, under DDP rank 0 reads and the others receive; both train like the 1-rank run."""

import pytest

from tests.distributed.launch import assert_close, run, single_argv, step_values, torchrun_argv
from tests.hf.conftest import hf_folder

pytestmark = pytest.mark.slow

STEPS = 4
COMMON = ["--mixed-precision", "fp32", "--log-interval", "1", "--max-seq-length", "64", "--warmup-steps", "1",
          "--learning-rate", "3e-3", "--eval-interval", "1000", "--max-grad-norm", "0.5", "--device", "cpu",
          "--dist-timeout-seconds", "60", "--max-steps", str(STEPS)]


def args(folder, data, out, *extra):
    return ["-m", "syllabus", "pretrain", "--init-from", str(folder), "--data-dir", str(data), "--out", str(out),
            *COMMON, *extra]


@pytest.mark.parametrize("kind", ["qwen2", "llama3_scaled"])  # tied head with biases; untied, GQA, rope scaling
def test_two_ranks_continue_from_the_checkpoint_like_one(kind, code_corpus, tmp_path):
    folder = hf_folder(tmp_path, kind)
    single = tmp_path / "single"
    run(single_argv(args(folder, code_corpus, single, "--batch-size", "8")))
    for strategy in ("fsdp", "ddp"):
        out = tmp_path / strategy
        run(torchrun_argv(2, args(folder, code_corpus, out, "--batch-size", "4", "--strategy", strategy)), timeout=180)
        assert_close(step_values(out), step_values(single), range(1, STEPS + 1), 1e-4)
