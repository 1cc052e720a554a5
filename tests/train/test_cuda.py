"""On a CUDA GPU (skipped elsewhere; ``bench/gpu_check.sh`` runs these): ``auto`` picks bf16 where the GPU
has it, from peaks measured there, and a stage trains in it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from syllabus import PreTrainer, PreTrainingConfig
from syllabus.train.precision import resolve_precision

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_on_this_gpu():
    choice = resolve_precision("auto", "cuda")
    assert choice.chosen == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16")
    assert choice.peaks["bf16"] > 0 and choice.peaks["fp32"] > 0
    if torch.cuda.is_bf16_supported(including_emulation=False):
        assert choice.best == "bf16"  # tensor cores: bf16 matmuls beat fp32 (TF32 off by default)


def test_a_stage_trains_on_the_gpu_in_auto(code_corpus, code_tokenizer, tmp_path):
    config = PreTrainingConfig(data_dir=str(code_corpus), tokenizer=str(code_tokenizer), out_dir=str(tmp_path),
                               device="cuda", max_steps=20, max_seq_length=128, micro_batch_size=8,
                               warmup_steps=2, learning_rate=2e-3, log_interval=5, eval_interval=1000,
                               model={"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                                      "intermediate_size": 384})
    assert PreTrainer(config).train().step == 20
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    event = next(r for r in records if r.get("event") == "precision")
    assert event["chosen"] == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16")
    steps = [r for r in records if "loss" in r]
    assert all(math.isfinite(r["loss"]) for r in steps) and steps[-1]["loss"] < steps[0]["loss"]
    assert all(0 < r["mfu"] <= 1 and r["peak_flops"] >= max(event["peaks"].values()) for r in steps)
    # against the spec sheet's dense peak on a GPU in the table, with the measured one beside; else measured
    assert all(r["peak_source"] == "measured" or (r["peak_source"].startswith("spec: ")
                                                  and 0 < r["measured_mfu"] <= 1) for r in steps)
