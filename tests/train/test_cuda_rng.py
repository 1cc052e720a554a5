"""The CUDA RNG in checkpoints: only the current device's state is saved and restored, so a run resumes with any
number of visible GPUs; an older checkpoint's list of per-GPU states still restores (faked here without CUDA)."""

from __future__ import annotations

import pytest
import torch

from syllabus import PreTrainer, PreTrainingConfig
from syllabus.train import trainer_checkpoints
from syllabus.train.trainer_checkpoints import cuda_rng_to_restore

STATES = [torch.full((16,), i, dtype=torch.uint8) for i in range(2)]  # what two GPUs' generators would hold


def test_the_current_devices_state_is_taken_from_a_list_of_any_length():
    assert torch.equal(cuda_rng_to_restore(STATES, 1), STATES[1])
    assert torch.equal(cuda_rng_to_restore(STATES, 0), STATES[0])
    assert torch.equal(cuda_rng_to_restore(STATES[:1], 5), STATES[0])  # saved with 1 GPU visible, resumed on GPU 5
    assert torch.equal(cuda_rng_to_restore(STATES[1], 3), STATES[1])  # the single state of newer checkpoints
    with pytest.raises(ValueError, match="rng_cuda"):
        cuda_rng_to_restore([], 0)


def config(corpus, tokenizer, out, steps, **extra):
    return PreTrainingConfig(data_dir=str(corpus), tokenizer=str(tokenizer), out_dir=str(out), device="cpu",
                             max_steps=steps, max_seq_length=32, micro_batch_size=2, warmup_steps=1,
                             mixed_precision="fp32", eval_interval=1000, log_interval=1,
                             model={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                    "intermediate_size": 64}, **extra)


def test_a_checkpoint_saved_with_two_gpu_states_resumes_on_one_visible_gpu(code_corpus, code_tokenizer, tmp_path,
                                                                           monkeypatch):
    PreTrainer(config(code_corpus, code_tokenizer, tmp_path, 2)).train()
    real_load = trainer_checkpoints.ckpt.load_trainer_state

    def saved_on_two_gpus(path):  # the structure get_rng_state_all() left in older checkpoints
        return {**real_load(path), "rng_cuda": list(STATES)}

    restored, saved = [], []
    monkeypatch.setattr(trainer_checkpoints.ckpt, "load_trainer_state", saved_on_two_gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)  # CUDA_VISIBLE_DEVICES=0: one GPU
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append(state))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: states[1])  # would raise IndexError
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": saved.append(device) or STATES[0])
    result = PreTrainer(config(code_corpus, code_tokenizer, tmp_path, 3, resume="auto")).train()
    assert result.step == 3
    assert len(restored) == 1 and torch.equal(restored[0], STATES[0])
    assert saved and all(d == "cuda" for d in saved)  # the new checkpoint holds one state, the current device's
    assert isinstance(real_load(tmp_path / "checkpoints" / "final")["rng_cuda"], torch.Tensor)
