"""Prepared shards remember how their records were rendered and which tokenizer made them."""

import json
import time

import pytest
from tokenizers import Tokenizer

from syllabus.cli.main import main
from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data import open_source, prepare_shards, train_tokenizer
from syllabus.data.shards import shards_tokenizer
from syllabus.data.sources import resolve_files
from tests.data.test_records import CHAT, GSM8K, GSM_TEMPLATE, write


def quiet(*_):
    pass


def test_shards_record_render_options_and_refuse_others(tmp_path, tok):
    write(tmp_path / "chat.jsonl", [CHAT] * 30)
    prepare_shards(str(tmp_path / "chat.jsonl"), tok, tmp_path / "out", workers=1, records={"format": "chat"},
                   echo=quiet)
    header = json.loads((tmp_path / "out" / "train" / "header.json").read_text())
    assert header["render"]["format"] == "chat"
    open_source(str(tmp_path / "out"), tok)  # a plain path uses the shards as made
    open_source(SourceSpec(path=str(tmp_path / "out"), format="chat"), tok)
    with pytest.raises(ConfigError, match=r"calculator: made with 'keep', asked 'tags'"):
        open_source(SourceSpec(path=str(tmp_path / "out"), calculator="tags"), tok)
    with pytest.raises(ConfigError, match="prepared token shards"):  # never read as text
        resolve_files(tmp_path / "out")


def test_prepare_without_format_chat_names_the_option(tmp_path, tok, capsys):
    write(tmp_path / "chat.jsonl", [CHAT] * 30)
    tok.save(str(tmp_path / "tok.json"))
    code = main(["prepare", str(tmp_path / "chat.jsonl"), "--out", str(tmp_path / "o"), "--tokenizer",
                 str(tmp_path / "tok.json"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "missing_field=30" in err and "set `format: chat`" in err
    assert main(["prepare", str(tmp_path / "chat.jsonl"), "--out", str(tmp_path / "o"), "--tokenizer",
                 str(tmp_path / "tok.json"), "--format", "chat", "--workers", "1", "--restart"]) == 0


def test_gsm8k_folder_train_and_test_files(tmp_path, tok):
    write(tmp_path / "gsm8k" / "train.jsonl", [GSM8K] * 20)
    write(tmp_path / "gsm8k" / "test.jsonl", [{**GSM8K, "question": "Another question?"}] * 5)
    report = prepare_shards(str(tmp_path / "gsm8k"), tok, tmp_path / "out", workers=1, echo=quiet,
                            records={"template": GSM_TEMPLATE, "calculator": "tags"}, cleaning=None)
    assert report["splits"]["train"]["docs"] == 1 and report["splits"]["val"]["docs"] == 1  # exact dedup


def test_shards_of_two_tokenizers_fail_fast_naming_them(tmp_path, tok, real_text):
    write(tmp_path / "a.jsonl", [{"text": line} for line in real_text.splitlines()[:50] if line.strip()])
    other = train_tokenizer([line for line in real_text.splitlines() if line.strip()], 400)
    prepare_shards(str(tmp_path / "a.jsonl"), tok, tmp_path / "one", workers=1, echo=quiet)
    prepare_shards(str(tmp_path / "a.jsonl"), other, tmp_path / "two", workers=1, echo=quiet)
    found = shards_tokenizer({"wiki": str(tmp_path / "one"), "raw": str(tmp_path / "a.jsonl")})
    assert isinstance(found, Tokenizer) and found.to_str() == tok.to_str()
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        shards_tokenizer({"wiki": str(tmp_path / "one"), "math": str(tmp_path / "two")})
    assert time.perf_counter() - start < 1.0
    assert "wiki with tokenizer" in str(err.value) and "math with tokenizer" in str(err.value)
    assert "\n" not in str(err.value)


def test_tokenizer_train_on_shards_is_refused_at_the_door(tmp_path, tok):
    from syllabus.config.load import validate
    from syllabus.config.plan import PlanConfig

    write(tmp_path / "a.jsonl", [{"text": f"document {i} about the sea"} for i in range(30)])
    prepare_shards(str(tmp_path / "a.jsonl"), tok, tmp_path / "wiki", workers=1, echo=quiet)
    plan = {"name": "p", "sources": {"wiki": str(tmp_path / "wiki")}, "tokenizer": {"train_on": ["wiki"]},
            "stages": [{"name": "s", "data": {"wiki": 1.0}, "budget": {"steps": 1}}]}
    with pytest.raises(ConfigError, match=r"tokenizer.train_on: 'wiki' is prepared token shards, not text"):
        validate(PlanConfig, plan)


def test_saved_datasets_folder_streams_as_hf_source(tmp_path, tok):
    import datasets

    from syllabus.data import open_batches

    datasets.Dataset.from_list([CHAT] * 40).save_to_disk(str(tmp_path / "saved"))
    spec = SourceSpec(path=f"hf:{tmp_path / 'saved'}", format="chat")
    batch = open_batches({"chat": spec}, {"chat": 1.0}, tok).next_batch(2, 16)
    assert "User: What is 12" in tok.decode(batch["input_ids"].flatten().tolist())


def test_shards_prepared_with_stage_tokens_hold_tags_as_single_ids(tmp_path, tok, caplog):
    from syllabus.data import add_special_tokens, iter_eval_batches

    write(tmp_path / "chat.jsonl", [CHAT] * 30)
    prepare_shards(str(tmp_path / "chat.jsonl"), tok, tmp_path / "mot", workers=1, records={"format": "chat"},
                   special_tokens=["<think>", "</think>"], echo=quiet)
    assert shards_tokenizer({"mot": str(tmp_path / "mot")}).to_str() == tok.to_str()  # the base tokenizer
    stage = Tokenizer.from_str(tok.to_str())
    think, end = add_special_tokens(stage, ["<think>", "</think>", "<calculation>"])[:2]
    row = open_source(str(tmp_path / "mot"), stage, shuffle=False).read_row(40).tolist()
    assert row.count(think) == 1 and row.count(end) == 1
    with pytest.raises(ConfigError, match="lacks <think> </think>"):  # an earlier stage trains on it: refused
        open_source(str(tmp_path / "mot"), tok)
    with caplog.at_level("INFO", logger="syllabus"):  # ...and scoring it there is skipped, said once
        assert list(iter_eval_batches(str(tmp_path / "mot"), tok, seq_len=16, batch_size=2, split="train")) == []
    assert "not evaluated in this stage" in caplog.text
    other = train_tokenizer(["some other text entirely"] * 50, 300)
    with pytest.raises(ConfigError, match="prepare it again with this tokenizer"):
        open_source(str(tmp_path / "mot"), other)
