"""Kernel calibration: the decision rules, both branches of each choice through injected measurements, and the
cache shared with the matmul peaks. No timing here: every measurement is injected (the real ones run once, on
tiny shapes, only to show they return figures)."""

import json

import pytest
import torch

from syllabus.config.model import model_config_for
from syllabus.model.kernels import attention_class, loss_class
from syllabus.train import calibration, peaks
from syllabus.train.calibration import choose_attention, kernel_choice, loss_group_candidates

SDPA_ERR = [0.004, 0.005, 0.005, 0.004]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path))
    return tmp_path / "peaks.json"


def config():
    return model_config_for("tiny", vocab_size=8192, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=256, max_position_embeddings=1024)


def injected(seconds: dict, errors: dict | None = None, loss_seconds: dict | None = None, calls=None):
    calls = calls if calls is not None else []

    def time_attention(path, B, H, KV, S, D, dtype):
        calls.append(("attention", path, S))
        return seconds[S][path] if isinstance(seconds.get(S), dict) else seconds[path]

    def attention_errors(path, H, KV, S, D, dtype):
        return (errors or {}).get(path, SDPA_ERR)

    def time_loss(group, rows, hidden, vocab, dtype):
        calls.append(("loss", group))
        return (loss_seconds or {}).get(group, 1.0)

    return dict(time_attention=time_attention, attention_errors=attention_errors, time_loss=time_loss)


def test_choose_attention_takes_the_fastest_path_within_the_accuracy_bound():
    seconds = {"sdpa": 3.0, "explicit": 2.0, "explicit-bf16": 1.0}
    within = {"sdpa": SDPA_ERR, "explicit": SDPA_ERR, "explicit-bf16": [e * 1.05 for e in SDPA_ERR]}
    assert choose_attention(seconds, within) == "explicit-bf16"
    beyond = dict(within, **{"explicit-bf16": SDPA_ERR[:3] + [SDPA_ERR[3] * 1.3]})  # one gradient off
    assert choose_attention(seconds, beyond) == "explicit"
    assert choose_attention(seconds, dict(beyond, explicit=[e * 1.5 for e in SDPA_ERR])) == "sdpa"
    assert choose_attention({"sdpa": 1.0, "explicit": 2.0}, within) == "sdpa"


@pytest.mark.parametrize("faster", ["sdpa", "explicit"])
def test_attention_follows_the_injected_measurement_on_both_branches_and_is_cached(faster, cache):
    slower = "explicit" if faster == "sdpa" else "sdpa"
    seconds = {faster: 1.0, slower: 2.0, "explicit-bf16": 0.5}
    errors = {"explicit-bf16": [e * 2 for e in SDPA_ERR]}  # fastest, but outside the bound
    calls = []
    choice = kernel_choice(config(), [(8, 256)], "bf16", "cpu", **injected(seconds, errors, calls=calls))
    key = attention_class("bf16", 64, 256)
    assert choice.attention == {key: faster} and choice.source == "measured"
    assert choice.seconds[key] == seconds and choice.errors[key]["explicit-bf16"] == pytest.approx(0.01)
    assert len([c for c in calls if c[0] == "attention"]) == 3 * (1 + calibration.REPEATS)
    # cached with the peaks, under the same machine key
    entry = json.loads(cache.read_text())[peaks.machine_key("cpu")]
    assert entry["kernels"]["attention"] == {key: faster}
    again = kernel_choice(config(), [(8, 200)], "bf16", "cpu", **injected({}, calls=(calls := [])))
    assert again.attention == {key: faster} and again.source == "cached" and calls == []


def test_a_path_per_length_class_as_measured(cache):
    seconds = {256: {"sdpa": 2.0, "explicit": 1.0, "explicit-bf16": 3.0},
               1024: {"sdpa": 1.0, "explicit": 1.5, "explicit-bf16": 3.0}}
    choice = kernel_choice(config(), [(8, 256), (2, 1024)], "bf16", "cpu", **injected(seconds))
    assert choice.attention == {attention_class("bf16", 64, 256): "explicit",
                                attention_class("bf16", 64, 1024): "sdpa"}


@pytest.mark.parametrize("best", [0, -1])
def test_loss_group_follows_the_injected_measurement_on_both_branches(best, cache):
    candidates = loss_group_candidates(8 * 256, 8192)
    assert len(candidates) >= 2  # 512-row chunks: groups of 512, 1024 and 2048 rows
    loss_seconds = {n: 2.0 for n in candidates} | {candidates[best]: 1.0}
    choice = kernel_choice(config(), [(8, 256)], "bf16", "cpu",
                           **injected({"sdpa": 1, "explicit": 2, "explicit-bf16": 3}, loss_seconds=loss_seconds))
    assert choice.loss_group == {loss_class("bf16", 128, 8192, 2048): candidates[best]}


def test_loss_group_candidates_split_the_rows_differently():
    assert loss_group_candidates(2048, 8192) == [2**22, 2**23, 2**24]  # 512, 1024, 2048 rows
    assert loss_group_candidates(256, 96) == [2**22]  # one chunk holds everything


def test_fp32_never_considers_bf16_scores_and_cuda_measures_nothing(cache):
    calls = []
    kernel_choice(config(), [(2, 64)], "fp32", "cpu", **injected({"sdpa": 1.0, "explicit": 2.0}, calls=calls))
    assert {c[1] for c in calls if c[0] == "attention"} == {"sdpa", "explicit"}
    choice = kernel_choice(config(), [(2, 64)], "bf16", "cuda", **injected({}, calls=(calls := [])))
    assert choice.attention == {} and calls == []


def test_the_real_measurements_return_figures_on_a_tiny_shape():
    errors = calibration._attention_errors("explicit-bf16", 4, 2, 64, 16, torch.bfloat16)
    assert len(errors) == 4 and all(0 < e < 0.05 for e in errors)
    assert max(calibration._attention_errors("explicit", 4, 4, 64, 16, torch.float32)) < 1e-5
    assert calibration._time_attention("sdpa", 1, 2, 2, 64, 16, torch.bfloat16) > 0
    assert calibration._time_loss(2**22, 256, 16, 96, torch.bfloat16) > 0


@pytest.mark.parametrize("faster", ["sdpa", "explicit"])
def test_a_run_computes_with_the_calibrated_path_and_writes_it_to_the_run_folder(
        faster, monkeypatch, cache, code_corpus, code_tokenizer, tmp_path):
    """Calibration injected (nothing timed): the trainer's model takes the faster path, and run_config.yaml holds
    the choice while still reading back as the same config."""
    import yaml

    from syllabus import PreTrainer, PreTrainingConfig
    from syllabus.config.load import load_config
    from syllabus.model import attention
    from tests.train.test_precision import EPYC_BF16, inject, tiny_config

    inject(monkeypatch, native=True, measured=EPYC_BF16)
    fake = injected({faster: 1.0, "sdpa" if faster == "explicit" else "explicit": 2.0, "explicit-bf16": 3.0})
    monkeypatch.setattr(calibration, "_time_attention", fake["time_attention"])
    monkeypatch.setattr(calibration, "_time_loss", fake["time_loss"])
    monkeypatch.setattr(calibration, "_attention_errors", fake["attention_errors"])
    calls = []
    real = attention._ExplicitAttention.apply
    monkeypatch.setattr(attention._ExplicitAttention, "apply", lambda *a: calls.append(1) or real(*a))
    config = tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=1)
    PreTrainer(config).train()
    key = attention_class("bf16", 16, 32)
    assert (len(calls) > 0) == (faster == "explicit")
    written = yaml.safe_load((tmp_path / "run_config.yaml").read_text())
    assert written["kernels"]["attention"] == {key: faster} and written["kernels"]["source"] == "measured"
    assert load_config(PreTrainingConfig, tmp_path / "run_config.yaml") == config


def test_busy_figures_are_measured_again_once_quiet_and_an_hour_old_and_only_once(cache, monkeypatch):
    """Within the hour the first figures stand whatever the load (so the two runs of one test, and the suite
    with its own fresh cache, always read the same choice); then a busy class is measured again once, quiet."""
    clock = [1000.0]
    monkeypatch.setattr(calibration, "_now", lambda: clock[0])
    monkeypatch.setattr(peaks, "_load", lambda: 100.0)  # busy
    first = kernel_choice(config(), [(8, 256)], "bf16", "cpu",
                          **injected({"sdpa": 1.0, "explicit": 2.0, "explicit-bf16": 3}))
    key = attention_class("bf16", 64, 256)
    assert first.attention == {key: "sdpa"}
    calls = []
    monkeypatch.setattr(peaks, "_load", lambda: 0.0)  # quiet now, but the figures are younger than an hour
    clock[0] += calibration.REMEASURE_AFTER_S - 1
    young = kernel_choice(config(), [(8, 256)], "bf16", "cpu", **injected({}, calls=calls))
    assert young.source == "cached" and young.attention == {key: "sdpa"} and calls == []
    clock[0] += 1
    quiet = kernel_choice(config(), [(8, 256)], "bf16", "cpu",
                          **injected({"sdpa": 2.0, "explicit": 1.0, "explicit-bf16": 3}, calls=calls))
    assert quiet.source == "measured" and quiet.attention == {key: "explicit"} and calls
    clock[0] += 10 * calibration.REMEASURE_AFTER_S  # measured quiet: never again, busy or not
    for load in (0.0, 100.0):
        monkeypatch.setattr(peaks, "_load", lambda load=load: load)
        again = kernel_choice(config(), [(8, 256)], "bf16", "cpu", **injected({}, calls=(calls := [])))
        assert again.source == "cached" and again.attention == {key: "explicit"} and calls == []


def test_a_cache_entry_of_the_older_format_is_measured_again_when_it_was_busy(cache, monkeypatch):
    """Entries written before per-class ``taken`` held one ``load`` for all classes: busy then, quiet now, again;
    a new class is stored beside the cached ones, which stay."""
    key = attention_class("bf16", 64, 256)
    other = attention_class("bf16", 64, 4096)
    cache.write_text(json.dumps({peaks.machine_key("cpu"): {"kernels": {
        "attention": {key: "sdpa", other: "sdpa"}, "loss_group": {loss_class("bf16", 128, 8192, 2048): 2**22},
        "load": 100.0}}}))
    monkeypatch.setattr(peaks, "_load", lambda: 0.0)
    choice = kernel_choice(config(), [(8, 256)], "bf16", "cpu",
                           **injected({"sdpa": 2.0, "explicit": 1.0, "explicit-bf16": 3}))
    assert choice.source == "measured" and choice.attention == {key: "explicit"}
    stored = json.loads(cache.read_text())[peaks.machine_key("cpu")]["kernels"]
    assert stored["attention"] == {key: "explicit", other: "sdpa"} and stored["taken"][key]["load"] == 0.0


def _losses(run_dir):
    return {r["step"]: r["loss"] for r in map(json.loads, open(run_dir / "metrics.jsonl")) if "loss" in r}


def test_a_resumed_run_keeps_the_checkpoints_kernels_even_when_the_cache_now_says_otherwise(
        monkeypatch, cache, code_corpus, code_tokenizer, tmp_path):
    """Calibration picks sdpa; between the two halves of an interrupted run the cache is made to say explicit.
    The resumed half keeps sdpa (checkpoint, run_config.yaml, the kernel actually run) and its losses equal those
    of the same run resumed with the cache untouched, bit for bit; a checkpoint without kernels (older) takes
    the cache's choice."""
    import yaml

    from syllabus import PreTrainer
    from syllabus.model import attention
    from syllabus.train.trainer_checkpoints import TrainerCheckpoints
    from tests.train.test_precision import EPYC_BF16, inject, tiny_config

    inject(monkeypatch, native=True, measured=EPYC_BF16)
    fake = injected({"sdpa": 1.0, "explicit": 2.0, "explicit-bf16": 3.0})
    for name in ("time_attention", "time_loss", "attention_errors"):
        monkeypatch.setattr(calibration, f"_{name}", fake[name])
    calls = []
    real = attention._ExplicitAttention.apply
    monkeypatch.setattr(attention._ExplicitAttention, "apply", lambda *a: calls.append(1) or real(*a))
    key = attention_class("bf16", 16, 32)
    reference = tmp_path / "reference"
    for steps in (2, 4):  # (a shorter run has another LR schedule: the reference is resumed at step 2 too)
        PreTrainer(tiny_config(code_corpus, code_tokenizer, reference, max_steps=steps, resume="auto")).train()
    out = tmp_path / "interrupted"
    PreTrainer(tiny_config(code_corpus, code_tokenizer, out, max_steps=2)).train()
    older, with_kernels = tmp_path / "older", TrainerCheckpoints._trainer_state
    monkeypatch.setattr(TrainerCheckpoints, "_trainer_state",
                        lambda self: {k: v for k, v in with_kernels(self).items() if k != "kernels"})
    PreTrainer(tiny_config(code_corpus, code_tokenizer, older, max_steps=2)).train()
    monkeypatch.setattr(TrainerCheckpoints, "_trainer_state", with_kernels)
    assert calls == []
    assert json.loads(cache.read_text())[peaks.machine_key("cpu")]["kernels"]["attention"][key] == "sdpa"

    def cache_says(path):
        data = json.loads(cache.read_text())
        data[peaks.machine_key("cpu")]["kernels"]["attention"][key] = path
        cache.write_text(json.dumps(data))

    cache_says("explicit")
    PreTrainer(tiny_config(code_corpus, code_tokenizer, out, max_steps=4, resume="auto")).train()
    assert calls == []  # sdpa throughout, as the checkpoint says
    assert _losses(out) == _losses(reference)
    saved = torch.load(out / "checkpoints" / "step_4" / "trainer_state.pt", weights_only=True)
    assert saved["kernels"]["attention"] == {key: "sdpa"}
    written = yaml.safe_load((out / "run_config.yaml").read_text())["kernels"]
    assert written["attention"] == {key: "sdpa"} and written["source"] == "kept from the checkpoint (cached)"
    # an older checkpoint, without kernels: this machine's (cached) choice
    assert calls == []
    PreTrainer(tiny_config(code_corpus, code_tokenizer, older, max_steps=4, resume="auto")).train()
    assert calls
    assert yaml.safe_load((older / "run_config.yaml").read_text())["kernels"]["attention"] == {key: "explicit"}


def test_the_runs_a_test_starts_share_the_suites_own_cache():
    """``tests/conftest.py`` sets the suite's cache before ``harness.ENV`` copies the environment (at import)."""
    import os

    from tests.faults.harness import ENV

    assert ENV["SYLLABUS_CACHE_DIR"] == os.environ["SYLLABUS_CACHE_DIR"] == str(peaks.cache_file().parent)
