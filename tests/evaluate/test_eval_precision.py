"""Evaluation runs in the run's precision: every forward of the tasks autocasts to it (generation's KV cache
included), ``syllabus eval`` picks the checkpoint's, and fp32 matmuls use TF32 on CUDA only."""

from __future__ import annotations

import json

import pytest
import torch

from syllabus.evaluate.tasks import run_tasks
from syllabus.train.precision import cpu_has_native_bf16, use_tf32_matmuls


def head_dtypes(model) -> list[torch.dtype]:
    seen = []
    model.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
def test_tasks_autocast_every_forward_generation_included(model, tokenizer, dtype):
    seen = head_dtypes(model)
    scores = run_tasks(model, tokenizer, ["arithmetic", "hellaswag"], limit=4, autocast=dtype)
    assert 0 <= scores["arithmetic/acc"] <= 1 and 0 <= scores["hellaswag/acc"] <= 1
    assert seen and set(seen) == {dtype or torch.float32}


def test_stage_tasks_run_in_the_trainers_precision(monkeypatch):
    from syllabus.plan import stage_tasks

    calls = []
    monkeypatch.setattr("syllabus.evaluate.run_tasks", lambda *a, **k: calls.append(k) or {"arithmetic/acc": 0.5})

    class Trainer:
        step, stage, tokens_seen, tokenizer, autocast_dtype = 4, "s", 0, None, torch.bfloat16
        config = type("C", (), {"max_steps": 10})
        raw_model = torch.nn.Linear(1, 1)

    stage_tasks.StageTasks(["arithmetic"], 2, 3, 0, None, None)(Trainer())
    assert calls == [{"limit": 3, "autocast": torch.bfloat16}]


def test_eval_auto_precision_is_the_checkpoints_where_this_device_runs_it(tmp_path):
    from syllabus.cli.eval import device_and_precision

    for trained, expected in (("fp32", None), ("bf16", torch.bfloat16 if cpu_has_native_bf16() else "auto")):
        (tmp_path / "run_config.json").write_text(json.dumps({"precision": {"chosen": trained}}))
        device, dtype = device_and_precision("auto", "auto", tmp_path)
        assert device == ("cuda" if torch.cuda.is_available() else "cpu")
        if expected != "auto":
            assert dtype == expected
    assert device_and_precision("cpu", "fp32", tmp_path) == ("cpu", None)
    assert device_and_precision("cpu", "bf16", tmp_path) == ("cpu", torch.bfloat16)


def test_tf32_is_turned_on_for_cuda_only():
    torch.backends.cuda.matmul.allow_tf32 = False
    use_tf32_matmuls("cpu")
    assert torch.backends.cuda.matmul.fp32_precision != "tf32"
    use_tf32_matmuls("cuda")
    try:
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.mkldnn.matmul.fp32_precision == "none"  # the CPU's fp32 matmuls stay exact
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
