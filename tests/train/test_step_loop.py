"""The step loop reads no device value between its log, evaluation and save steps (on a GPU every such read is a
host sync that stops the CPU from running ahead), skips non-finite updates on the device, and reads its batches
ahead on a thread without changing what a checkpoint resumes."""

from __future__ import annotations

import json
import threading

import torch

from syllabus.config import PreTrainingConfig
from syllabus.config.model import model_config_for
from syllabus.data import open_batches
from syllabus.data.tokenizer import load_tokenizer
from syllabus.model import Transformer
from syllabus.train.metrics import MetricsLog
from syllabus.train.trainer import Trainer

READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def logged(trainer) -> list[dict]:
    """The records the trainer wrote to its ``metrics.jsonl`` so far."""
    return [json.loads(line) for line in (trainer.metrics.out_dir / "metrics.jsonl").read_text().splitlines()]


def tiny_trainer(corpus, tokenizer_path, out, **overrides) -> Trainer:
    torch.manual_seed(0)
    tok = load_tokenizer(str(tokenizer_path))
    model = Transformer(model_config_for("tiny", vocab_size=1024, hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=192))
    config = PreTrainingConfig(**{"mixed_precision": "fp32", "device": "cpu", "out_dir": str(out),
                                  "max_seq_length": 32, "micro_batch_size": 2, "warmup_steps": 1,
                                  "max_steps": 8, "log_interval": 4, "save_interval": 1000,
                                  "gradient_accumulation_steps": 2, **overrides})
    batches = open_batches({"code": str(corpus / "train.jsonl")}, {"code": 1.0}, tok, seed=0)
    return Trainer(config, model, tok, batches, out_dir=out, metrics=MetricsLog(out))


def test_steps_between_log_steps_read_no_tensor_on_the_main_thread(code_corpus, code_tokenizer, tmp_path,
                                                                   monkeypatch):
    trainer = tiny_trainer(code_corpus, code_tokenizer, tmp_path)
    reads: list[tuple[int, str]] = []
    main = threading.main_thread()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if threading.current_thread() is main:
                reads.append((trainer.step, _name))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.train()
    monkeypatch.undo()
    assert trainer.step == 8
    # every host read of a tensor happened at a log step (4, 8) or at the end (the final save), none in a step
    assert reads and {step for step, _ in reads} <= {4, 8}, sorted(set(reads))
    assert [r["step"] for r in logged(trainer) if "loss" in r] == [4, 8]


# --- non-finite steps: skipped on the device, counted and acted on at the next check step ----------------------
def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_a_nonfinite_step_is_skipped_on_the_device_and_counted_at_the_next_log_step(
        code_corpus, code_tokenizer, tmp_path, monkeypatch):
    from syllabus.train import faults

    monkeypatch.setenv(faults.NAN_STEPS, "2")
    monkeypatch.setattr(faults, "_poisoned", set())
    trainer = tiny_trainer(code_corpus, code_tokenizer, tmp_path)
    after = {}
    trainer.step_hooks.append(lambda t: after.__setitem__(t.step, weights(t.raw_model)))
    trainer.train()
    assert all(torch.equal(after[1][n], after[2][n]) for n in after[1])  # step 2 changed nothing
    assert not all(torch.equal(after[2][n], after[3][n]) for n in after[2])
    by_step = {r["step"]: r for r in logged(trainer) if "loss" in r}
    assert by_step[4]["nonfinite_skips"] == 1 and by_step[8]["nonfinite_skips"] == 1
    steps = {float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {7.0}  # AdamW's own step count left out the skipped step


def test_a_streak_is_rolled_back_at_the_first_check_step_after_it(code_corpus, code_tokenizer, tmp_path,
                                                                 monkeypatch):
    from syllabus.train import faults

    monkeypatch.setenv(faults.NAN_STEPS, "6,7")
    monkeypatch.setattr(faults, "_poisoned", set())
    trainer = tiny_trainer(code_corpus, code_tokenizer, tmp_path, max_steps=12, log_interval=5, save_interval=4,
                           max_nonfinite_skips=2, lr_schedule="constant")
    trainer.train()
    (rollback,) = [r for r in logged(trainer) if r.get("event") == "rollback"]
    # the streak (6, 7) ended before step 8, the first step that reads the counts: rolled back there, to step 4
    assert (rollback["from_step"], rollback["step"], rollback["nonfinite_skips"]) == (8, 4, 2)
    assert rollback["checkpoint"].endswith("step_4") and trainer.lr_multiplier == 0.5
    assert trainer.step == 12 and trainer.nonfinite_skips == 2
    steps = [r["step"] for r in logged(trainer) if "loss" in r]
    assert steps == [5, 5, 10, 12]


# --- a finished trainer holds no cycle: refcounting frees it, its model and its optimizer ----------------------
def test_a_finished_trainer_is_freed_without_the_cycle_collector(code_corpus, code_tokenizer, tmp_path):
    import gc
    import weakref

    trainer = tiny_trainer(code_corpus, code_tokenizer, tmp_path, max_steps=3, save_interval=2, async_save=True)
    trainer.train()
    refs = [weakref.ref(trainer), weakref.ref(trainer.raw_model), weakref.ref(trainer.optimizer),
            weakref.ref(trainer.checkpoints)]
    gc.disable()
    try:
        del trainer
        assert [r() is None for r in refs] == [True] * 4
    finally:
        gc.enable()
