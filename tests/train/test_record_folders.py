"""Folders as datasets ship them train and evaluate: a lone train.jsonl (held-out rows by content hash) and
GSM8K's train.jsonl + test.jsonl (held-out rows from the test file), read through a template."""

import json

from syllabus import PreTrainer, PreTrainingConfig
from syllabus.data import save_tokenizer, train_tokenizer
from tests.data.conftest import make_docs, real_text, tok, write_jsonl  # noqa: F401 (fixtures)
from tests.data.test_records import GSM8K, GSM_TEMPLATE, write

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}


def train(tmp_path, data_dir, tok, **extra) -> list[dict]:
    cfg = PreTrainingConfig(data_dir=str(data_dir), tokenizer=str(tok), out_dir=str(tmp_path / "run"), max_steps=4,
                            micro_batch_size=2, max_seq_length=32, warmup_steps=1, eval_interval=2, eval_batches=2,
                            log_interval=1, mixed_precision="fp32", device="cpu", model=TINY, **extra)
    result = PreTrainer(cfg).train()
    assert result.step == 4
    return [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]


def test_lone_train_jsonl_trains_and_evaluates(tmp_path, real_text, tok):
    write_jsonl(tmp_path / "data" / "train.jsonl", make_docs(real_text, 400, seed=1, tag="w"))
    save_tokenizer(tok, tmp_path / "tok.json")
    records = train(tmp_path, tmp_path / "data", tmp_path / "tok.json")
    assert [r["val_loss"] for r in records if "val_loss" in r]


def test_gsm8k_train_and_test_files_train_and_evaluate_on_test(tmp_path, tok):
    questions = [{**GSM8K, "question": f"Question number {i}: {GSM8K['question']}"} for i in range(60)]
    write(tmp_path / "gsm8k" / "train.jsonl", questions[:50])
    write(tmp_path / "gsm8k" / "test.jsonl", questions[50:])
    save_tokenizer(tok, tmp_path / "tok.json")
    records = train(tmp_path, tmp_path / "gsm8k", tmp_path / "tok.json", template=GSM_TEMPLATE,
                    calculator="tags")
    assert [r["val_loss"] for r in records if "val_loss" in r]
