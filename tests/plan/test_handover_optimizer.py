"""``optimizer: continue``: the next stage's AdamW starts from the previous stage's moments, grown rows at zero."""

import pytest
import torch

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.data import load_tokenizer
from syllabus.plan.handover import carry_optimizer, stage_model, stage_tokenizer
from syllabus.plan.runner import run_plan
from syllabus.plan.stages import resolve_stages
from syllabus.train import checkpoint as ckpt
from syllabus.train.trainer import Trainer
from tests.plan.conftest import make_plan

pytestmark = pytest.mark.slow


def test_continue_carries_the_moments_and_zeroes_the_new_rows(demo_corpus, demo_tokenizer, tmp_path):
    stages = [{"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 4}},
              {"name": "two", "data": {"code": 1.0}, "budget": {"steps": 4}, "optimizer": "continue",
               "special_tokens": ["<think>", "</think>"]}]
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, stages))
    run_dir = tmp_path / "run"
    run_plan(plan, run_dir, pause_after="one")
    one, two = resolve_stages(plan, run_dir, {})
    tokenizer, new_ids = stage_tokenizer(load_tokenizer(demo_tokenizer), two)
    model = stage_model(two, one, tokenizer, new_ids, None)
    trainer = Trainer(two.config, model, tokenizer, None, out_dir=tmp_path / "t", dist=None)
    carry_optimizer(trainer, one)
    saved = ckpt.load_trainer_state(one.checkpoints / "final")["optimizer"]["state"]
    carried = trainer.optimizer.state_dict()["state"]
    assert saved.keys() == carried.keys() and len(saved) > 0
    names = [name for group in trainer.optimizer.param_groups for name, p in model.named_parameters()
             if any(p is q for q in group["params"])]
    for index, state in saved.items():
        for key in ("exp_avg", "exp_avg_sq"):
            old, new = state[key], carried[index][key]
            assert torch.equal(new[:old.shape[0]], old), (index, key)
            if new.shape != old.shape:  # the embedding grew for the new tokens: their moments start at zero
                assert new.shape[0] > old.shape[0] and not new[old.shape[0]:].any()
                assert min(new_ids) >= old.shape[0] or "embed" in names[index]
        assert torch.equal(carried[index]["step"], state["step"])
    assert any(carried[i]["exp_avg"].shape != saved[i]["exp_avg"].shape for i in saved) or \
        model.config.vocab_size == ckpt.load_model_state(one.checkpoints / "final")["model.embed_tokens.weight"].shape[0]
