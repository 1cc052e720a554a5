"""Checkpoint merging at stage ends: exact averaging, the rule's choice becomes ``final``, the report shows both."""

import json
from pathlib import Path

import pytest
import torch

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.handover import weights_digest
from syllabus.plan.merge import average_checkpoints
from syllabus.plan.runner import run_plan
from syllabus.train import checkpoint as ckpt
from tests.plan.conftest import make_plan, records


def test_average_of_two_checkpoints_is_the_exact_mean(tmp_path):
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.5, -1.0])}
    b = {"w": torch.tensor([[3.0, 0.0], [-3.0, 8.0]]), "b": torch.tensor([1.5, 2.0])}
    paths = [ckpt.save_checkpoint(tmp_path, step, state, {"step": step}, json_files={})
             for step, state in ((1, a), (2, b))]
    mean = average_checkpoints(paths)
    assert torch.equal(mean["w"], torch.tensor([[2.0, 1.0], [0.0, 6.0]]))
    assert torch.equal(mean["b"], torch.tensor([1.0, 0.5]))


@pytest.mark.slow
def test_merged_weights_become_final_when_the_rule_says_so(demo_corpus, demo_tokenizer, tmp_path):
    stages = [{"name": "noisy", "data": {"wiki": 1.0}, "budget": {"steps": 8},
               "lr": {"peak": 2e-2, "warmup": 0, "schedule": "constant"}, "merge": {"last": 3, "choose": "merged"}},
              {"name": "next", "data": {"code": 1.0}, "budget": {"steps": 4}, "merge": {"last": 2}}]
    plan = make_plan(demo_corpus, demo_tokenizer, stages)
    plan["defaults"].update({"save_interval": 2, "keep_last_n_checkpoints": 4})
    run_dir = tmp_path / "run"
    run_plan(validate(PlanConfig, plan), run_dir)
    checkpoints = run_dir / "stages" / "1-noisy" / "checkpoints"
    want = average_checkpoints([checkpoints / f"step_{n}" for n in (8, 6, 4)])
    final = ckpt.load_model_state(checkpoints / "final")
    assert all(torch.equal(final[k], want[k]) for k in want)
    assert not torch.equal(final["model.norm.weight"], ckpt.load_model_state(checkpoints / "step_8")["model.norm.weight"])
    # the next stage starts from the merged weights
    assert records(run_dir, event="stage_start", stage="next")[0]["init_sha256"] == weights_digest(final)
    assert sorted(p.name for p in (run_dir / "stages" / "1-noisy").iterdir()) == ["checkpoints"]  # no merging/ left
    merges = [json.loads(line) for line in open(run_dir / "evals.jsonl") if '"event": "merge"' in line]
    assert [(m["stage"], m["candidate"], m["chosen"]) for m in merges[:2]] == [("noisy", "final", False),
                                                                                 ("noisy", "merged", True)]
    assert merges[1]["averaged"] == ["step_8", "step_6", "step_4"] and "val_loss/wiki" in merges[1]
    # the second stage's rule is "best": the lower mean held-out loss over its own domain wins
    best = {m["candidate"]: m for m in merges[2:]}
    winner = min(best, key=lambda name: best[name]["mean_loss"])
    assert best[winner]["chosen"] and not best[{"final": "merged", "merged": "final"}[winner]]["chosen"]
    report = (run_dir / "report.md").read_text()
    assert "| noisy | merged | step_8, step_6, step_4 | merged by stage_domains |" in report
    assert "| noisy | final | – |" in report


def test_merge_needs_its_checkpoints_kept():
    from syllabus.config.errors import ConfigError

    plan = make_plan(Path("c"), Path("t.json"), [{"name": "a", "data": {"wiki": 1.0}, "merge": {"last": 5}}])
    with pytest.raises(ConfigError, match="stages.0.merge.last: 5 checkpoints cannot be averaged when only "
                                          "keep_last_n_checkpoints=3"):
        validate(PlanConfig, plan)
