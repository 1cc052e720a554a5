"""A plan whose math stage reads GSM8K-shaped records with ``calculator: tags``: the declared special tokens
that occur in the data are trained, a declared one that never occurs is left exactly as grown."""

import pytest

from syllabus.config.load import validate
from syllabus.config.plan import PlanConfig
from syllabus.data import load_tokenizer
from syllabus.plan.runner import run_plan
from syllabus.train import checkpoint as ckpt
from tests.data.conftest import make_docs, real_text, write_jsonl  # noqa: F401 (fixture)
from tests.data.test_records import GSM8K, GSM_TEMPLATE, write
from tests.plan.conftest import TINY_MODEL

pytestmark = pytest.mark.slow


def test_calculation_embeddings_are_trained_and_an_unused_token_is_not(tmp_path, real_text):
    write_jsonl(tmp_path / "wiki" / "train.jsonl", make_docs(real_text, 300, seed=0, tag="w"))
    gsm = [{**GSM8K, "question": f"({i}) {GSM8K['question']}"} for i in range(120)]
    write(tmp_path / "gsm8k" / "train.jsonl", gsm[:100])
    write(tmp_path / "gsm8k" / "test.jsonl", gsm[100:])
    plan = validate(PlanConfig, {
        "name": "calc",
        "sources": {"wiki": str(tmp_path / "wiki"),
                    "gsm8k": {"path": str(tmp_path / "gsm8k"), "template": GSM_TEMPLATE, "calculator": "tags"}},
        "model": {"size": "tiny", "overrides": {**TINY_MODEL, "tie_word_embeddings": False}},
        "tokenizer": {"vocab_size": 400},
        "defaults": {"micro_batch_size": 2, "max_seq_length": 64, "mixed_precision": "fp32", "device": "cpu",
                     "save_interval": 1000, "log_interval": 1},
        "stages": [
            {"name": "foundation", "data": {"wiki": 1.0}, "budget": {"steps": 2}, "lr": {"peak": 1e-3, "warmup": 0}},
            {"name": "math", "data": {"gsm8k": 1.0}, "budget": {"steps": 4}, "lr": {"peak": 1e-3, "warmup": 0},
             "special_tokens": ["<calculation>", "</calculation>", "<unused>"]}],
        "evaluation": {"every": 1000, "perplexity": ["gsm8k"], "batches": 1},
    })
    assert run_plan(plan, tmp_path / "run")["status"] == "finished"
    tok = load_tokenizer(tmp_path / "run" / "tokenizer-base.json")  # before any stage added tokens
    first_new = tok.get_vocab_size()
    # the run folder's tokenizer is the last stage's: its special tokens are single ids
    final_tok = load_tokenizer(tmp_path / "run" / "tokenizer.json")
    assert final_tok.encode("<calculation>1+1=2</calculation>").ids[0] == first_new
    assert final_tok.to_str() == (tmp_path / "run" / "stages" / "2-math" / "checkpoints" / "final" /
                                  "tokenizer.json").read_text()
    assert "stages/2-math/checkpoints/final/tokenizer.json" in (tmp_path / "run" / "report.md").read_text()
    before = ckpt.load_model_state(tmp_path / "run" / "stages" / "1-foundation" / "checkpoints" / "final")
    after = ckpt.load_model_state(tmp_path / "run" / "stages" / "2-math" / "checkpoints" / "final")
    grown = before["model.embed_tokens.weight"][:first_new].mean(0)  # how new rows start (grow_embeddings)
    rows = after["model.embed_tokens.weight"]
    calc, end, unused = first_new, first_new + 1, first_new + 2
    assert (rows[calc] - grown).abs().max() > 1e-4 and (rows[end] - grown).abs().max() > 1e-4
    assert (rows[unused] - grown).abs().max() < 1e-7
