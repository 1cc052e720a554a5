"""``compile: true`` trains: the compiled model's losses match eager ones step for step (fp32, CPU, to
compile's rounding) and its checkpoint holds the plain parameter names (no ``_orig_mod.``), loadable as usual."""

import json

import pytest

from syllabus.checkpoints import load_model_state
from syllabus.cli.main import main
from tests.conftest import TINY_FLAGS

pytestmark = pytest.mark.slow


def losses_of(out):
    return {r["step"]: r["loss"] for r in map(json.loads, open(out / "metrics.jsonl")) if "loss" in r}


def test_compiled_training_matches_eager_and_saves_plain_names(code_corpus, code_tokenizer, tmp_path):
    base = ["pretrain", "--data-dir", str(code_corpus), "--tokenizer", str(code_tokenizer), "--device", "cpu",
            "--mixed-precision", "fp32", "--max-seq-length", "32", "--batch-size", "2", "--max-steps", "4",
            "--warmup-steps", "1", "--log-interval", "1", "--eval-batches", "1", *TINY_FLAGS]
    assert main([*base, "--out", str(tmp_path / "eager")]) == 0
    assert main([*base, "--out", str(tmp_path / "compiled"), "--compile"]) == 0
    import torch._dynamo

    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the model really went through dynamo
    eager, compiled = losses_of(tmp_path / "eager"), losses_of(tmp_path / "compiled")
    assert sorted(compiled) == [1, 2, 3, 4]
    assert all(abs(compiled[s] - eager[s]) < 1e-4 for s in eager), (eager, compiled)
    names = set(load_model_state(tmp_path / "compiled" / "checkpoints" / "final"))
    assert names == set(load_model_state(tmp_path / "eager" / "checkpoints" / "final"))
