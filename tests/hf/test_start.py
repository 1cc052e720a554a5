"""Starting from a Hugging Face checkpoint: refusals at the door, ``syllabus pretrain --init-from`` and a two-stage
plan with ``model: {from: ...}`` (replay and special tokens in stage 2) that resumes after SIGKILL and exports."""

import json
import signal
import subprocess
import sys

import pytest
import torch

from syllabus.config import ConfigError, validate
from syllabus.config.plan import PlanConfig
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.data import load_tokenizer
from syllabus.hf.weights import load_hf_model
from tests.hf.conftest import hf_folder
from tests.plan.conftest import demo_corpus, losses, make_plan, run_argv, write_plan  # noqa: F401 (fixture)
from tests.train.runs import run, start_and_signal

PLAN = {"name": "p", "sources": {"wiki": "data/wiki"}, "model": {"from": "some/folder"},
        "stages": [{"name": "one", "data": {"wiki": 1.0}}]}


@pytest.mark.parametrize("model, tokenizer, expected", [
    ({"from": "x", "size": "small"}, None, "model.from: the shape comes from the checkpoint's config.json; drop model.size"),
    ({"from": "x", "overrides": {"hidden_size": 64}}, None,
     "model.from: the shape comes from the checkpoint's config.json; drop model.overrides.hidden_size"),
    ({"from": "x"}, {"path": "t.json"}, "tokenizer: model.from brings its own tokenizer.json; drop tokenizer.path"),
])
def test_a_plan_that_sets_a_shape_beside_from_is_refused_in_one_line(model, tokenizer, expected):
    plan = {**PLAN, "model": model, **({"tokenizer": tokenizer} if tokenizer else {})}
    with pytest.raises(ConfigError) as err:
        validate(PlanConfig, plan)
    assert str(err.value).splitlines() == [expected]


def test_init_from_with_a_shape_override_is_refused():
    with pytest.raises(ConfigError, match="init_from: the shape comes from the checkpoint's config.json; drop "
                                          "model.hidden_size"):
        validate(PreTrainingConfig, {"init_from": "x", "model": {"hidden_size": 64}})


def test_pretrain_refuses_an_unsupported_architecture_in_one_line(tmp_path):
    folder = hf_folder(tmp_path, "llama_tied")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    (tmp_path / "d.jsonl").write_text('{"text": "hello there"}\n')
    out = subprocess.run([sys.executable, "-m", "syllabus", "pretrain", "--init-from", str(folder),
                          "--data-sources", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert ("init_from: architecture GPT2LMHeadModel is not supported (supported: LlamaForCausalLM, "
            "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)") in out.stderr
    assert "Traceback" not in out.stderr


def test_pretrain_init_from_starts_from_the_checkpoint_and_keeps_its_architecture(tmp_path, demo_corpus):
    folder = hf_folder(tmp_path, "qwen2")
    out = tmp_path / "run"
    run([sys.executable, "-m", "syllabus", "pretrain", "--init-from", str(folder), "--data-sources",
         str(demo_corpus / "wiki"), "--out", str(out), "--max-steps", "2", "--micro-batch-size", "2",
         "--max-seq-length", "32", "--mixed-precision", "fp32", "--warmup-steps", "0", "--learning-rate", "1e-9",
         "--min-learning-rate", "1e-9", "--weight-decay", "0", "--eval-interval", "100"])
    final = out / "checkpoints" / "final"
    shape = json.loads((final / "model_config.json").read_text())
    assert shape["architecture"] == "Qwen2ForCausalLM" and shape["attention_bias"] is True
    assert load_tokenizer(final).to_str() == load_tokenizer(folder).to_str()  # the model's own, as is
    from syllabus.checkpoints import load_model

    trained, _ = load_model(final)
    original = load_hf_model(folder)
    for name, p in original.state_dict().items():  # a learning rate of 1e-9: still the checkpoint's weights
        assert torch.allclose(trained.state_dict()[name], p, atol=1e-6), name


TWO_STAGES = [
    {"name": "one", "data": {"wiki": 1.0}, "budget": {"steps": 6}, "lr": {"peak": 1e-3, "warmup": 1}},
    {"name": "two", "data": {"math": 0.75}, "replay": {"fraction": 0.25, "from": ["one"]}, "budget": {"steps": 6},
     "lr": {"peak": 1e-3, "warmup": 1}, "special_tokens": ["<think>", "<calculation>"]},
]


@pytest.fixture(scope="module")
def qwen_plan(demo_corpus, tmp_path_factory):
    folder = hf_folder(tmp_path_factory.mktemp("qwen3"), "qwen3")
    plan = make_plan(demo_corpus, folder / "tokenizer.json", TWO_STAGES)
    plan["model"] = {"from": str(folder)}
    del plan["tokenizer"]
    plan["defaults"]["save_interval"] = 3
    plan["evaluation"] = {"every": 3, "perplexity": ["wiki"], "batches": 1}
    return write_plan(tmp_path_factory.mktemp("plan"), plan), folder


@pytest.mark.slow
def test_a_plan_from_a_checkpoint_resumes_exactly_exports_and_keeps_the_original_rows(qwen_plan, tmp_path):
    transformers = pytest.importorskip("transformers")
    from syllabus.config.load import load_config
    from syllabus.plan.handover import stage_model, stage_tokenizer
    from syllabus.plan.stages import resolve_stages
    from syllabus.train import checkpoint as ckpt

    plan_path, folder = qwen_plan
    straight = tmp_path / "straight"
    run(run_argv(plan_path, straight))
    killed = tmp_path / "killed"
    code = start_and_signal(run_argv(plan_path, killed), killed / "stages/2-two/checkpoints/step_3/manifest.json",
                            signal.SIGKILL)
    assert code == -signal.SIGKILL
    run(run_argv(plan_path, killed))
    assert losses(killed) == losses(straight) and len(losses(straight)) == 12

    # Stage 2 starts from stage 1's final rows, bit for bit; <think> (already in the tokenizer) is reused.
    plan = load_config(PlanConfig, plan_path)
    stages = resolve_stages(plan, straight, {})
    base = load_tokenizer(folder)
    tokenizer, new_ids = stage_tokenizer(base, stages[1])
    assert tokenizer.token_to_id("<think>") == base.token_to_id("<think>")
    assert new_ids == [base.get_vocab_size()]  # <calculation> alone is new
    final = ckpt.load_model_state(stages[0].checkpoints / "final")
    start = stage_model(stages[1], stages[0], tokenizer, new_ids, None).state_dict()
    rows = final["model.embed_tokens.weight"]
    kept = [i for i in range(rows.shape[0]) if i not in new_ids]
    assert torch.equal(start["model.embed_tokens.weight"][kept], rows[kept])
    assert torch.equal(start["lm_head.weight"][kept], final["lm_head.weight"][kept])  # qwen3 here: untied
    first = stage_model(stages[0], None, *stage_tokenizer(base, stages[0]), None).state_dict()
    assert all(torch.equal(first[n], p) for n, p in load_hf_model(folder).state_dict().items())

    from syllabus.checkpoints import load_model
    from syllabus.export.hf import export_checkpoint

    out = export_checkpoint(stages[1].checkpoints / "final", tmp_path / "export")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]
    ours, tok = load_model(stages[1].checkpoints / "final")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "<think>342 + 567 = <calculation>909</calculation>"
    assert hf_tok(text)["input_ids"] == tok.encode(text).ids
    ids = torch.tensor([tok.encode(text).ids])
    with torch.no_grad():
        assert torch.allclose(ours(ids), hf(ids).logits, atol=1e-4, rtol=0)


def test_a_chat_source_without_a_template_gets_the_models_own(tmp_path):
    from syllabus.plan.starting_point import resolve_starting_point
    from syllabus.train.distributed import DistContext

    folder = hf_folder(tmp_path, "qwen2")
    plan = validate(PlanConfig, {**PLAN, "model": {"from": str(folder)},
                                 "sources": {"chat": {"path": "c.jsonl", "format": "chat"}, "own": {
                                     "path": "o.jsonl", "format": "chat", "chat_template": "mine.json"},
                                     "wiki": "w.jsonl"},
                                 "defaults": {"max_seq_length": 64},
                                 "stages": [{"name": "one", "data": {"chat": 0.4, "own": 0.3, "wiki": 0.3}}]})
    resolved = resolve_starting_point(plan, DistContext.single("cpu"))
    assert resolved.source_spec("chat").chat_template == str(folder / "tokenizer_config.json")
    assert resolved.source_spec("own").chat_template == "mine.json"
    assert resolved.source_spec("wiki").chat_template is None
    from syllabus.data.records import RecordRenderer

    from collections import Counter

    text = RecordRenderer(resolved.source_spec("chat")).render({"messages": [{"role": "user", "content": "hi"}]},
                                                               Counter())
    assert str(text) == "<|im_start|>user\nhi<|im_end|>\n"
