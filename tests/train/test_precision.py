"""``mixed_precision: auto``: chosen from the hardware's capability and measured matmul peaks (both injected
here: no timing in these tests), kept on resume, an explicit value obeyed; MFU against the best peak."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
import torch
import yaml

from syllabus import PreTrainer, PreTrainingConfig
from syllabus.config.load import load_config
from syllabus.train import peaks, precision
from syllabus.train.metrics import Progress
from syllabus.train.precision import PrecisionChoice, choose_precision, cpu_has_native_bf16, slow_precision_warning
from syllabus.train.throughput import PeakEstimate

# bench/peak.py on the two machines of issue 17 (FLOP/s)
XEON_NO_BF16 = {"fp32": 326e9, "bf16": 60e9}  # AVX-512, no avx512_bf16 / amx_bf16: bf16 emulated
EPYC_BF16 = {"fp32": 192e9, "bf16": 426e9}  # avx512_bf16


@pytest.mark.parametrize("native, measured, expected", [
    (False, XEON_NO_BF16, "fp32"),
    (False, {"fp32": 100e9, "bf16": 400e9}, "fp32"),  # no bf16 instructions: fp32 whatever a reading says
    (True, EPYC_BF16, "bf16"),
    (True, {"fp32": 300e9, "bf16": 250e9}, "fp32"),  # the instructions, but the calibration says no faster
])
def test_auto_on_the_cpu(native, measured, expected):
    choice = choose_precision("auto", "cpu", measured, native_bf16=native)
    assert choice.chosen == expected and choice.requested == "auto" and choice.peaks == measured


@pytest.mark.parametrize("native, sharded, expected", [(True, False, "bf16"), (False, False, "fp16"),
                                                       (False, True, "fp32")])
def test_auto_on_cuda(native, sharded, expected):
    assert choose_precision("auto", "cuda", {}, native_bf16=native, sharded=sharded).chosen == expected


@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
def test_an_explicit_value_is_obeyed(requested):
    assert choose_precision(requested, "cpu", XEON_NO_BF16, native_bf16=False).chosen == requested
    assert choose_precision(requested, "cpu", EPYC_BF16, native_bf16=True).chosen == requested


def test_native_bf16_read_from_the_cpu_flags():
    assert cpu_has_native_bf16("flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n")
    assert not cpu_has_native_bf16("flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n")


def test_a_much_slower_explicit_precision_is_warned_about_once(monkeypatch, caplog):
    inject(monkeypatch, native=False, measured=XEON_NO_BF16)
    assert "5.4x slower than fp32" in slow_precision_warning(PrecisionChoice("bf16", "bf16", "", XEON_NO_BF16), "cpu")
    assert slow_precision_warning(PrecisionChoice("fp32", "fp32", "", XEON_NO_BF16), "cpu") is None
    assert slow_precision_warning(PrecisionChoice("fp32", "fp32", "", {"fp32": 100.0, "bf16": 140.0}), "cpu") is None
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="syllabus"):
        for _ in range(3):
            assert precision.resolve_precision("bf16", "cpu").chosen == "bf16"
    assert [r.getMessage() for r in caplog.records].count(
        "mixed_precision: bf16 runs matmuls at 60 GFLOP/s on this CPU, 5.4x slower than fp32 (326); "
        "mixed_precision: auto would use fp32") == 1


def test_mfu_is_measured_against_the_best_peak():
    choice = PrecisionChoice("fp32", "fp32", "", {"fp32": 100e9, "bf16": 300e9})
    figures = PeakEstimate(choice, "cpu", remeasure=no_remeasure).figures(1e6, 50e3)  # 50 GFLOP/s achieved
    assert figures == pytest.approx({"mfu": 50 / 300, "precision_mfu": 0.5, "peak_flops": 300e9,
                                     "precision_peak_flops": 100e9})
    bf16 = PrecisionChoice("auto", "bf16", "", {"fp32": 100e9, "bf16": 300e9})
    assert PeakEstimate(bf16, "cpu", remeasure=no_remeasure).figures(1e6, 50e3)["precision_mfu"] == pytest.approx(1 / 6)


def test_a_reading_above_the_peak_measures_it_again():
    calls = []

    def remeasure(name, device):
        calls.append(name)
        return 200e9

    now = [0.0]
    estimate = PeakEstimate(PrecisionChoice("auto", "fp32", "", {"fp32": 100e9, "bf16": 80e9}), "cpu", remeasure,
                            clock=lambda: now[0])
    figures = estimate.figures(1e6, 150e3)  # 150 GFLOP/s: the fp32 reading (100) was low
    assert calls == ["fp32"] and figures["peak_flops"] == 200e9 and figures["mfu"] == pytest.approx(0.75)
    estimate.figures(1e6, 150e3)
    assert calls == ["fp32"]  # not again once the peak is right
    estimate.figures(1e6, 250e3)  # above again, but measured a moment ago: a busy machine, not measured each step
    assert calls == ["fp32"]
    now[0] = PeakEstimate.REMEASURE_SECONDS
    estimate.figures(1e6, 250e3)
    assert calls == ["fp32", "fp32"]


def test_peaks_cached_per_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setattr(peaks, "_load", lambda: 1.0)  # an equally busy machine each time
    measured = []

    def measure(names, device):
        measured.append(tuple(names))
        return {n: 1e9 * (len(measured) + 10) for n in names}

    first = peaks.machine_peaks(["fp32", "bf16"], "cpu", measure)
    peaks._memo.clear()  # as a new process would: from the file
    assert peaks.machine_peaks(["fp32", "bf16"], "cpu", measure) == first and measured == [("fp32", "bf16")]
    key = peaks.machine_key("cpu")
    assert json.loads((tmp_path / "a" / "peaks.json").read_text())[key] == {**first, "load": 1.0}
    assert f"torch={torch.__version__}" in key and f"threads={torch.get_num_threads()}" in key
    real_version = torch.__version__
    monkeypatch.setattr(torch, "__version__", "0.0-other")  # another torch: another machine entry
    assert peaks.machine_peaks(["fp32"], "cpu", measure) != {"fp32": first["fp32"]} and len(measured) == 2
    monkeypatch.setattr(torch, "__version__", real_version)
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path / "b"))  # no cache: measured again
    peaks.machine_peaks(["fp32"], "cpu", measure)
    assert len(measured) == 3
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path / "a"))
    assert peaks.remeasure("fp32", "cpu", measure) == 14e9  # higher: kept
    assert peaks.remeasure("fp32", "cpu", lambda names, device: {"fp32": 1e9}) == 14e9  # lower: ignored
    peaks._memo.clear()
    assert peaks.machine_peaks(["fp32"], "cpu", measure)["fp32"] == 14e9


def test_a_peak_taken_on_a_busier_machine_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path))
    readings = iter([50e9, 180e9, 120e9])
    measure = lambda names, device: {n: next(readings) for n in names}  # noqa: E731
    cores = os.cpu_count()
    monkeypatch.setattr(peaks, "_load", lambda: 2.0 * cores)  # others hold the cores: a low reading
    assert peaks.machine_peaks(["fp32"], "cpu", measure) == {"fp32": 50e9}
    peaks._memo.clear()
    monkeypatch.setattr(peaks, "_load", lambda: 0.1 * cores)  # a later process on a quiet machine: again
    assert peaks.machine_peaks(["fp32"], "cpu", measure) == {"fp32": 180e9}
    peaks._memo.clear()
    assert peaks.machine_peaks(["fp32"], "cpu", measure) == {"fp32": 180e9}  # now as quiet as then: cached
    monkeypatch.setattr(peaks, "_load", lambda: 1.0 * cores)  # busy again: the quiet figure stays
    peaks._memo.clear()
    assert peaks.machine_peaks(["fp32"], "cpu", measure) == {"fp32": 180e9}
    assert peaks.remeasure("fp32", "cpu", measure) == 180e9  # a lower reading (120) never replaces it


def test_auto_in_a_run_kept_on_resume_and_written_down(monkeypatch, code_corpus, code_tokenizer, tmp_path):
    """A run starts on a bf16 machine (auto -> bf16); resumed where auto would pick fp32, it stays bf16; an
    explicit fp32 on resume is obeyed. The choice and the peaks are in metrics, checkpoint, the checkpoint's
    run_config.json and the run folder's run_config.yaml."""
    progress = io.StringIO()
    monkeypatch.setattr(Progress.__init__, "__defaults__", (0, "train", progress))
    inject(monkeypatch, native=True, measured=EPYC_BF16)
    PreTrainer(tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=2)).train()
    inject(monkeypatch, native=False, measured=XEON_NO_BF16)
    PreTrainer(tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=4, resume="auto")).train()
    # the progress line: mfu against the best peak, that peak, and (when it is not the best) bf16's own
    assert "mfu 0.0% of 426 GFLOP/s eta" in progress.getvalue()
    assert "mfu 0.0% of 326 GFLOP/s (bf16 0%) eta" in progress.getvalue()
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    events = [r for r in records if r.get("event") == "precision"]
    assert [(e["requested"], e["chosen"]) for e in events] == [("auto", "bf16"), ("auto", "bf16")]
    assert events[0]["peaks"] == EPYC_BF16 and events[1]["peaks"] == XEON_NO_BF16
    steps = [r for r in records if "loss" in r]
    assert [r["peak_flops"] for r in steps] == [426e9, 426e9, 326e9, 326e9]
    for r in steps:  # mfu checkable from the record: against the best peak; precision_mfu against bf16's own
        assert r["mfu"] == pytest.approx(r["tokens_per_sec"] * flops_per_token(tmp_path) / r["peak_flops"])
        assert r["precision_mfu"] == pytest.approx(r["mfu"] * r["peak_flops"] / r["precision_peak_flops"])
    assert [r["precision_peak_flops"] for r in steps] == [426e9, 426e9, 60e9, 60e9]  # bf16's own, each machine
    saved = torch.load(tmp_path / "checkpoints" / "step_4" / "trainer_state.pt", weights_only=True)
    assert saved["precision"]["chosen"] == "bf16"
    run_config = json.loads((tmp_path / "checkpoints" / "step_4" / "run_config.json").read_text())
    assert run_config["mixed_precision"] == "auto" and run_config["precision"]["chosen"] == "bf16"
    # the run folder's run_config.yaml: the setting as given, and what it resolved to on this (second) machine
    folder_config = yaml.safe_load((tmp_path / "run_config.yaml").read_text())
    assert folder_config["mixed_precision"] == "auto"
    assert folder_config["precision"] == {"requested": "auto", "chosen": "bf16", "peaks": XEON_NO_BF16,
                                          "reason": "kept from the checkpoint (native bf16 matmul, faster than fp32)"}
    # ... and it still reads back as a config (the precision block is a record, not a setting)
    assert load_config(PreTrainingConfig, tmp_path / "run_config.yaml") == \
        tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=4, resume="auto")

    explicit = PreTrainer(tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=5, resume="auto",
                                      mixed_precision="fp32")).train()
    assert explicit.step == 5
    last = [json.loads(line) for line in open(tmp_path / "metrics.jsonl") if '"event": "precision"' in line][-1]
    assert (last["requested"], last["chosen"]) == ("fp32", "fp32")
    assert yaml.safe_load((tmp_path / "run_config.yaml").read_text())["precision"] == \
        {"requested": "fp32", "chosen": "fp32", "reason": "as configured", "peaks": XEON_NO_BF16}


def test_auto_picks_fp32_in_a_run_on_a_cpu_without_bf16(monkeypatch, code_corpus, code_tokenizer, tmp_path):
    inject(monkeypatch, native=False, measured=XEON_NO_BF16)
    seen = []
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: ("dtype" in k and seen.append(k["dtype"])) or _no_context())
    PreTrainer(tiny_config(code_corpus, code_tokenizer, tmp_path, max_steps=1)).train()
    assert seen == []  # fp32: no autocast into a lower precision at all
    inject(monkeypatch, native=True, measured=EPYC_BF16)
    PreTrainer(tiny_config(code_corpus, code_tokenizer, tmp_path / "b", max_steps=1)).train()
    assert seen and set(seen) == {torch.bfloat16}


# --- helpers ---------------------------------------------------------------------------------------------
def inject(monkeypatch, native: bool, measured: dict[str, float]) -> None:
    """This machine's capability and peaks as given; nothing is timed."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(peaks, "machine_peaks", lambda names, device, measure=None: {n: measured[n] for n in names})


def no_remeasure(name, device):
    raise AssertionError("no reading here is above its peak")


def tiny_config(corpus, tokenizer, out, **fields) -> PreTrainingConfig:
    base = dict(data_dir=str(corpus), tokenizer=str(tokenizer), out_dir=str(out), max_seq_length=32,
                micro_batch_size=2, warmup_steps=0, log_interval=1, eval_interval=1000, save_interval=2,
                model={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64})
    return PreTrainingConfig(**{**base, **fields})


def flops_per_token(run_dir) -> float:
    from syllabus.config.model import ModelConfig
    from syllabus.model import Transformer

    config = ModelConfig(**json.loads((run_dir / "checkpoints" / "step_4" / "model_config.json").read_text()))
    with torch.device("meta"):
        return Transformer(config).flops_per_token(32)


class _no_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("bad", ["fast", None, -1.0, float("inf"), True, [3]])
def test_a_cached_peak_that_is_not_a_number_is_measured_again(monkeypatch, tmp_path, bad):
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(peaks, "_load", lambda: 0.0)
    peaks._memo.clear()
    key = peaks.machine_key("cpu")
    (tmp_path / "peaks.json").write_text(json.dumps({key: {"fp32": bad, "bf16": 9e11, "load": "busy"}}))
    got = peaks.machine_peaks(["fp32", "bf16"], "cpu", lambda names, device: {n: 3e11 for n in names})
    assert got == {"fp32": 3e11, "bf16": 9e11}  # the hand-edited figure measured again, the good one kept
    peaks._memo.clear()
