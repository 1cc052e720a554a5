"""``compile`` trains: ``compile: auto``, told by its figures that compiling pays, runs the stage's first steps
eager, compiles the blocks in place mid-stage and measures what that cost; the losses match an eager run's
step for step (fp32, CPU, to compile's rounding) and the checkpoint holds the plain parameter names (no
``_orig_mod.``), loadable as usual. The decision rule itself is ``test_compile_choice.py``'s."""

import json

import pytest

from syllabus.checkpoints import load_model_state
from syllabus.cli.main import main
from syllabus.train import compile_choice, peaks
from tests.conftest import TINY_FLAGS

pytestmark = pytest.mark.slow


def records(out):
    return list(map(json.loads, open(out / "metrics.jsonl")))


def losses_of(out):
    return {r["step"]: r["loss"] for r in records(out) if "loss" in r}


def test_auto_compiles_mid_stage_matches_eager_and_saves_plain_names(code_corpus, code_tokenizer, tmp_path,
                                                                      monkeypatch):
    base = ["pretrain", "--data-dir", str(code_corpus), "--tokenizer", str(code_tokenizer), "--device", "cpu",
            "--mixed-precision", "fp32", "--max-seq-length", "32", "--batch-size", "2", "--max-steps", "8",
            "--warmup-steps", "1", "--log-interval", "1", "--eval-batches", "1", *TINY_FLAGS]
    import torch._dynamo

    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]  # the suite's other tests compile too
    assert main([*base, "--out", str(tmp_path / "eager"), "--compile", "false"]) == 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # compile: false compiled nothing
    stored = []
    store = peaks.store_entry
    monkeypatch.setattr(peaks, "store_entry", lambda device, values: stored.append(values) if "compile" in values
                        else store(device, values))  # the suite's cache keeps no figures of this test's
    monkeypatch.setattr(compile_choice, "ASSUMED", {"cpu": (0.0, 10.0)})  # no figures cached: these say "pays"
    assert main([*base, "--out", str(tmp_path / "auto")]) == 0  # compile: auto is the default
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # the blocks went through dynamo
    events = [r for r in records(tmp_path / "auto") if r.get("event") == "compile"]
    assert events[0]["step"] == 4 and events[0]["compiled"] is True and events[0]["figures"] == "assumed"
    assert events[1]["step"] == 8 and events[1]["measured_warmup_seconds"] > 0
    (figures,) = [values["compile"] for values in stored]
    assert list(figures.values())[0]["speedup"] == events[1]["measured_speedup"]
    eager, compiled = losses_of(tmp_path / "eager"), losses_of(tmp_path / "auto")
    assert sorted(compiled) == list(range(1, 9))
    assert all(abs(compiled[s] - eager[s]) < 1e-4 for s in eager), (eager, compiled)
    names = set(load_model_state(tmp_path / "auto" / "checkpoints" / "final"))
    assert names == set(load_model_state(tmp_path / "eager" / "checkpoints" / "final"))
