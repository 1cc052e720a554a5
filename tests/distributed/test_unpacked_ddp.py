"""packing: false on 2 CPU ranks: documents of very different lengths, padded per micro-batch; the loss of a step
is the mean over every real target token of both ranks, so 2 ranks x 4 equals 1 rank x 8."""

import json
import random

import pytest

from syllabus.data import create_sample_pretraining_data, save_tokenizer, train_tokenizer
from tests.distributed.launch import assert_close, pretrain_args, run, single_argv, step_values, torchrun_argv

pytestmark = pytest.mark.slow
STEPS = 6


def test_unpacked_two_ranks_of_four_match_one_rank_of_eight(tmp_path):
    create_sample_pretraining_data(tmp_path / "sample", docs_per_domain=100, files_per_domain=1)
    sentences = [json.loads(line)["text"] for line in open(tmp_path / "sample" / "general" / "c4_001.jsonl")]
    rng = random.Random(0)
    texts = [" ".join(rng.sample(sentences, rng.choice([1, 1, 2, 6]))) for _ in range(300)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tokenizer = save_tokenizer(train_tokenizer(texts, 512), tmp_path / "tok.json")
    lengths = sorted(len(t) for t in texts)
    assert lengths[-1] > 10 * lengths[0]  # very different lengths
    common = ["--packing", "false", "--max-seq-length", "256", "--max-steps", str(STEPS), "--strategy", "ddp"]
    two = tmp_path / "two"
    run(torchrun_argv(2, pretrain_args(tmp_path / "data", tokenizer, two, "--batch-size", "4", *common)))
    one = tmp_path / "one"
    run(single_argv(pretrain_args(tmp_path / "data", tokenizer, one, "--batch-size", "8", *common)))
    steps = range(1, STEPS + 1)
    assert_close(step_values(one), step_values(two), steps, 1e-5)
    assert_close(step_values(one, "grad_norm"), step_values(two, "grad_norm"), steps, 1e-5)
