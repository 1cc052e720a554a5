"""Plans run end to end on real text: stage hand-over, curriculum, special tokens, resume, pause, report."""

import json
import math
import signal
import struct

import pytest
import torch

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.data import load_tokenizer
from syllabus.plan.handover import weights_digest
from syllabus.plan.runner import run_plan
from syllabus.train import checkpoint as ckpt
from tests.plan.conftest import losses, make_plan, records, run_argv, write_plan
from tests.train.runs import run, start_and_signal

pytestmark = pytest.mark.slow

TWO_STAGES = [
    {"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 12}, "lr": {"peak": 2e-3, "warmup": 2},
     "curriculum": [{"at": 0, "seq_len": 32}, {"at": 6, "seq_len": 64}]},
    {"name": "code", "data": {"code": 0.75}, "replay": {"fraction": 0.25, "from": ["foundation"]},
     "budget": {"steps": 8}, "lr": {"peak": 1e-3, "warmup": 2}, "special_tokens": ["<think>", "</think>"]},
]


@pytest.fixture(scope="module")
def two_stage_run(demo_corpus, demo_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_stage")
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, TWO_STAGES))
    summary = run_plan(plan, out / "run")
    return summary, out / "run"


def test_two_stages_hand_over_weights_and_write_a_report(two_stage_run):
    summary, run_dir = two_stage_run
    assert summary["status"] == "finished"
    final_1 = run_dir / "stages" / "1-foundation" / "checkpoints" / "final"
    (start,) = records(run_dir, event="stage_start", stage="code")
    assert start["init_sha256"] == weights_digest(ckpt.load_model_state(final_1))
    report = (run_dir / "report.md").read_text()
    assert "| foundation |" in report and "| code |" in report
    for name in ("loss_by_stage.png", "val_perplexity.png", "data_mix.png", "throughput.png"):
        data = (run_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 100 and height > 100
    evals = [json.loads(line) for line in open(run_dir / "evals.jsonl")]
    assert [e["stage"] for e in evals] == ["foundation", "code"]
    assert all(e["ppl/wiki"] > 1 for e in evals)


def test_curriculum_changes_seq_len_at_its_step_and_keeps_tokens_per_step(two_stage_run):
    _, run_dir = two_stage_run
    steps = {r["step"]: r for r in records(run_dir, stage="foundation") if "loss" in r}
    assert {steps[s]["seq_len"] for s in range(1, 7)} == {32}
    assert {steps[s]["seq_len"] for s in range(7, 13)} == {64}
    assert {steps[s]["tokens_per_step"] for s in steps} == {4 * 32}  # 4 x 32, then 2 x 64


def test_special_tokens_are_single_and_old_ids_and_embeddings_unchanged(two_stage_run, demo_tokenizer):
    _, run_dir = two_stage_run
    base = load_tokenizer(demo_tokenizer)
    stage_2 = run_dir / "stages" / "2-code" / "checkpoints" / "final"
    grown = load_tokenizer(stage_2 / "tokenizer.json")
    for token in ("<think>", "</think>"):
        assert len(grown.encode(f"a {token} b").ids) == len(base.encode("a  b").ids) + 1
        assert grown.token_to_id(token) >= base.get_vocab_size()
    text = "def f(x):\n    return 342 + 567\n"
    assert grown.encode(text).ids == base.encode(text).ids
    (start,) = records(run_dir, event="stage_start", stage="code")
    assert start["new_token_ids"] == [base.get_vocab_size(), base.get_vocab_size() + 1]


def test_grow_embeddings_keeps_old_rows():
    from syllabus.config.model import model_config_for
    from syllabus.model import Transformer
    from syllabus.plan.handover import grow_embeddings

    model = Transformer(model_config_for("tiny", vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64, tie_word_embeddings=False))
    before = model.model.embed_tokens.weight.detach().clone()
    head_before = model.lm_head.weight.detach().clone()
    grow_embeddings(model, [60, 61, 62, 63, 64, 65], 128)
    after = model.model.embed_tokens.weight
    assert after.shape == (128, 32) and model.lm_head.weight.shape == (128, 32)
    assert torch.equal(after[:60], before[:60]) and torch.equal(model.lm_head.weight[:60], head_before[:60])
    assert torch.allclose(after[64], before[:60].mean(0))


THREE_STAGES = [
    {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 8}, "lr": {"peak": 2e-3, "warmup": 2}},
    {"name": "two", "data": {"math": 0.8}, "replay": {"fraction": 0.2, "from": ["one"]}, "budget": {"steps": 8},
     "lr": {"peak": 1e-3, "warmup": 2}, "special_tokens": ["<calculation>"]},
    {"name": "three", "data": {"code": 1.0}, "budget": {"steps": 8}, "lr": {"peak": 5e-4, "warmup": 2}},
]


@pytest.fixture(scope="module")
def three_stage_plan(demo_corpus, demo_tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    plan = make_plan(demo_corpus, demo_tokenizer, THREE_STAGES)
    plan["defaults"]["save_interval"] = 3
    return write_plan(folder, plan)


@pytest.fixture(scope="module")
def three_stage_straight(three_stage_plan, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    run(run_argv(three_stage_plan, out))
    return losses(out)


@pytest.mark.parametrize("when", ["stages/2-two/checkpoints/step_3/manifest.json",  # mid-stage
                                  "stages/1-one/checkpoints/final/manifest.json"])  # at the boundary
def test_sigkill_then_rerun_gives_identical_losses(three_stage_plan, three_stage_straight, tmp_path, when):
    out = tmp_path / "run"
    code = start_and_signal(run_argv(three_stage_plan, out), out / when, signal.SIGKILL)
    assert code == -signal.SIGKILL
    run(run_argv(three_stage_plan, out))
    assert losses(out) == three_stage_straight


def test_pause_after_then_edit_later_stage_but_not_finished_one(three_stage_plan, tmp_path):
    out = tmp_path / "run"
    run(run_argv(three_stage_plan, out, "--pause-after", "one"))
    state = json.loads((out / "run_state.json").read_text())
    assert state["completed"] == ["one"] and not (out / "stages" / "2-two").exists()
    # Editing a stage not yet started is fine, and the edit is used.
    run(run_argv(three_stage_plan, out, "--set", "stages.1.budget.steps=4", "--pause-after", "two"))
    assert max(step for stage, step in losses(out) if stage == "two") == 4
    # Editing a finished stage is refused, with a clear line and no training.
    refused = __import__("subprocess").run(run_argv(three_stage_plan, out, "--set", "stages.0.lr.peak=0.1",
                                                    "--set", "stages.1.budget.steps=4"),
                                           capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "stages.one: lr changed, but this stage has finished; its config is frozen" in refused.stderr


def test_growing_the_vocabulary_adds_quiet_rows():
    """New padding rows start like freshly initialised ones: the loss rises at most to that of a model with
    the larger vocabulary (a random row of norm ~sqrt(d) would swamp the softmax through the tied head)."""
    from syllabus.config.model import model_config_for
    from syllabus.model import Transformer
    from syllabus.plan.handover import grow_embeddings

    torch.manual_seed(0)
    model = Transformer(model_config_for("tiny", vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64)).eval()
    ids = torch.randint(0, 60, (2, 16))
    labels = ids.roll(-1, 1)
    with torch.no_grad():
        before = model(ids, labels)
        grow_embeddings(model, [60, 61], 128)
        after = model(ids, labels)
    assert before < math.log(64) + 0.05 and after < math.log(128) + 0.05, (before, after)


def forgetting_plan(corpus, tokenizer, lr: float, replay: float | None) -> dict:
    second = {"name": "code", "data": {"code": 1.0 - (replay or 0.0)}, "budget": {"steps": 10},
              "lr": {"peak": lr, "warmup": 1}}
    if replay:
        second["replay"] = {"fraction": replay, "from": ["foundation"]}
    stages = [{"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 12}, "lr": {"peak": 2e-3, "warmup": 2}},
              second]
    return make_plan(corpus, tokenizer, stages, forgetting={"watch": "wiki", "threshold": 1.1, "action": "reduce_lr"})


def test_forgetting_gate_fires_on_a_harsh_second_stage_and_acts(demo_corpus, demo_tokenizer, tmp_path):
    plan = validate(PlanConfig, forgetting_plan(demo_corpus, demo_tokenizer, lr=3e-2, replay=None))
    run_plan(plan, tmp_path / "run")
    fired = records(tmp_path / "run", event="forgetting")
    assert fired and fired[0]["domain"] == "wiki" and fired[0]["ratio"] > 1.1
    assert fired[0]["lr_multiplier"] == 0.5
    lrs = {r["step"]: r["lr"] for r in records(tmp_path / "run", stage="code") if "lr" in r}
    after = fired[0]["step"] + 1
    assert lrs[after] < 0.6 * 3e-2  # the action shows in the logged learning rate
    assert "wiki perplexity" in (tmp_path / "run" / "report.md").read_text()


def test_forgetting_gate_quiet_when_replay_keeps_loss_in_check(demo_corpus, demo_tokenizer, tmp_path):
    plan = validate(PlanConfig, forgetting_plan(demo_corpus, demo_tokenizer, lr=2e-4, replay=0.5))
    run_plan(plan, tmp_path / "run")
    assert records(tmp_path / "run", event="forgetting") == []
