"""fp16: ``auto`` picks it on a GPU without native bf16 (compute capability below 8.0, injected here), and an fp16
run skips the steps whose gradients overflow, counts them, and keeps its loss scaler's state across a resume
(on the CPU, whose autocast and ``GradScaler("cpu")`` run the same code path)."""

from __future__ import annotations

import json
import logging
import shutil
from types import SimpleNamespace

import pytest
import torch

from syllabus import PreTrainer
from syllabus.train import faults, peaks, precision
from tests.train.test_precision import inject, tiny_config

MEASURED = {"fp32": 100e12, "bf16": 100e12, "fp16": 200e12}


def gpu(monkeypatch, major: int, emulated_bf16: bool = True) -> None:
    """A CUDA device of compute capability ``major``.0, on which bf16 tensors can be made (emulated before 8.0)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(major=major, minor=0))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: emulated_bf16)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(peaks, "machine_peaks", lambda names, device, measure=None: {n: MEASURED[n] for n in names})


@pytest.mark.parametrize("major, sharded, expected", [(7, False, "fp16"), (7, True, "fp32"), (8, False, "bf16"),
                                                      (9, True, "bf16")])
def test_auto_on_a_gpu_is_decided_by_its_compute_capability(monkeypatch, major, sharded, expected):
    gpu(monkeypatch, major)  # a V100 (7.0) or T4 (7.5) emulates bf16: slowly, so auto must not choose it
    choice = precision.resolve_precision("auto", "cuda", sharded=sharded)
    assert choice.chosen == expected, choice


def metrics(out) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, open(out / "metrics.jsonl")) if "loss" in r}


def test_fp16_skips_overflowed_steps_counts_them_and_resumes_with_its_scale(code_corpus, code_tokenizer, tmp_path,
                                                                             monkeypatch, caplog):
    inject(monkeypatch, native=True, measured=MEASURED)
    monkeypatch.setenv(faults.INF_GRAD_STEPS, "3")
    monkeypatch.setattr(faults, "_poisoned", set())
    straight = tmp_path / "straight"
    with caplog.at_level(logging.WARNING, logger="syllabus"):
        PreTrainer(tiny_config(code_corpus, code_tokenizer, straight, max_steps=6, mixed_precision="fp16",
                               save_interval=2, max_nonfinite_skips=1)).train()
    rows = metrics(straight)
    assert [rows[s]["nonfinite_skips"] for s in range(1, 7)] == [0, 0, 1, 1, 1, 1]
    scales = [rows[s]["loss_scale"] for s in range(1, 7)]
    assert scales[:2] == [65536.0] * 2 and scales[2:] == [32768.0] * 4  # halved by the overflow, no rollback
    assert not [r for r in map(json.loads, open(straight / "metrics.jsonl")) if r.get("event") == "rollback"]
    assert ("step 3: fp16 gradients overflowed in 1 step(s) since the last log; update skipped, loss scale "
            "lowered to 32768") in caplog.text
    step_2 = torch.load(straight / "checkpoints" / "step_2" / "trainer_state.pt", weights_only=True)
    assert step_2["scaler"]["scale"] == 65536.0

    resumed = tmp_path / "resumed"
    shutil.copytree(straight / "checkpoints" / "step_4", resumed / "checkpoints" / "step_4")
    PreTrainer(tiny_config(code_corpus, code_tokenizer, resumed, max_steps=6, mixed_precision="fp16",
                           save_interval=2, resume="auto")).train()
    again = metrics(resumed)
    assert [again[s]["loss_scale"] for s in (5, 6)] == [32768.0, 32768.0]
    assert [again[s]["loss"] for s in (5, 6)] == [rows[s]["loss"] for s in (5, 6)]
    assert again[6]["nonfinite_skips"] == 1
