import json

import numpy as np

from syllabus.cli.main import main
from syllabus.data import epoch_tokens, iter_eval_batches, prepare_shards, save_tokenizer
from syllabus.data.shards import ShardSet

from .conftest import write_jsonl
from .test_sources import BROKEN_LINES


def test_prepare_broken_file_counts_skips_uses_uint16(tmp_path, tok):
    raw = tmp_path / "broken.jsonl"
    raw.write_bytes(b"\n".join(BROKEN_LINES * 3) + b"\n")
    report = prepare_shards([str(raw)], tok, tmp_path / "out", workers=2, val_fraction=0.0,
                            max_doc_bytes=1000, echo=lambda s: None)
    assert report["dtype"] == "uint16"
    assert report["skipped"][str(raw)] == {"invalid_json": 3, "wrong_type": 3, "missing_field": 3, "empty": 3,
                                           "not_an_object": 3, "invalid_utf8": 3, "too_long": 3}
    assert report["removed"] == {"exact_duplicate": 4}  # the two good docs, repeated 3 times
    shards = ShardSet(tmp_path / "out" / "train")
    assert shards.num_docs == 2 and shards.tokens[0].dtype == np.uint16
    header = json.loads((tmp_path / "out" / "train" / "header.json").read_text())
    assert header["skipped"]["invalid_json"] == 3
    doc = np.asarray(shards.doc_slice(0, 0, int(shards.doc_len[0])))
    assert doc[-1] == 0 and tok.decode(doc[:-1].tolist()) == "a good document"


def test_prepare_split_by_file_name_and_eval(tmp_path, tok, real_text):
    paras = [f"{i}: {p}" for i, p in enumerate(real_text.splitlines()) if p.strip()]
    write_jsonl(tmp_path / "src" / "train.jsonl", paras[:200])
    write_jsonl(tmp_path / "src" / "val.jsonl", paras[200:230])
    report = prepare_shards([str(tmp_path / "src")], tok, tmp_path / "out", workers=1, echo=lambda s: None)
    assert report["splits"]["train"]["docs"] == 200 and report["splits"]["val"]["docs"] == 30
    val_tokens = epoch_tokens(tmp_path / "out", tok, split="val")
    assert val_tokens == report["splits"]["val"]["tokens"]
    assert val_tokens == epoch_tokens(tmp_path / "src", tok, split="val")  # raw source counts the same
    first = list(iter_eval_batches(str(tmp_path / "out"), tok, seq_len=64, batch_size=4))
    again = list(iter_eval_batches(str(tmp_path / "out"), tok, seq_len=64, batch_size=4))
    assert sum(b["input_ids"].shape[0] for b in first) == val_tokens // 65
    assert all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(first, again))
    raw = list(iter_eval_batches(str(tmp_path / "src"), tok, seq_len=64, batch_size=4, max_batches=2))
    assert len(raw) == 2 and (raw[0]["input_ids"] == first[0]["input_ids"]).all()


def test_cli_prepare_trains_tokenizer(tmp_path, real_text, capsys):
    paras = [p for p in real_text.splitlines() if p.strip()]
    write_jsonl(tmp_path / "in.jsonl", paras, field="content")
    code = main(["prepare", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"), "--vocab-size", "300",
                 "--text-field", "content", "--val-fraction", "0.1", "--workers", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "train" in out and "val" in out
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    assert ShardSet(tmp_path / "out" / "val").num_docs > 0


def test_cli_prepare_missing_input_is_clean_error(tmp_path, tok, capsys):
    tok_path = save_tokenizer(tok, tmp_path)
    code = main(["prepare", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"), "--tokenizer", str(tok_path)])
    assert code == 2 and "missing.jsonl" in capsys.readouterr().err
