import gzip
import json
from collections import Counter

import pytest

from syllabus.config.errors import ConfigError
from syllabus.data.sources import plan_units, read_documents, read_unit, resolve_files, split_of_text

BROKEN_LINES = [
    b'{"text": "a good document"}',
    b'{"text": "unterminated',
    b'{"text": 42}',
    b'{"body": "no text field"}',
    b'{"text": "   "}',
    b'["a list"]',
    b'{"text": "bad utf8 \xff\xfe here"}',
    b'{"text": "' + b"x" * 5000 + b'"}',
    b'',
    b'{"text": "another good one"}',
]


def test_broken_jsonl_skips_by_reason(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(BROKEN_LINES) + b"\n")
    skips = Counter()
    docs = list(read_documents(path, skips, max_doc_bytes=1000))
    assert docs == ["a good document", "another good one"]
    assert skips == {"invalid_json": 1, "wrong_type": 1, "missing_field": 1, "empty": 1, "not_an_object": 1,
                     "invalid_utf8": 1, "too_long": 1}


def test_compressed_text_field_and_units(tmp_path):
    import zstandard

    lines = "".join(json.dumps({"body": f"doc {i}"}) + "\n" for i in range(500)).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    (tmp_path / "c.jsonl").write_bytes(lines)
    for name in ("a.jsonl.gz", "b.jsonl.zst", "c.jsonl"):
        assert len(list(read_documents(tmp_path / name, text_field="body"))) == 500
    # byte-range units of an uncompressed file cover each line exactly once
    units = plan_units([tmp_path / "c.jsonl"], unit_bytes=1000)
    assert len(units) > 5
    docs = [d for u in units for d in read_unit(u, Counter(), text_field="body")]
    assert docs == [f"doc {i}" for i in range(500)]


def test_text_files_folder_glob_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "one.txt").write_text("First document.\n\nSecond paragraph, same document.\n")
    (tmp_path / "docs" / "two.py").write_text("def f():\n    return 1\n")
    (tmp_path / "docs" / "empty.txt").write_text("\n")
    assert len(list(read_documents(tmp_path / "docs"))) == 2
    assert len(resolve_files(str(tmp_path / "docs" / "*.txt"))) == 2
    table = pa.table({"content": ["alpha", None, "beta", ""]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    skips = Counter()
    assert list(read_documents(tmp_path / "t.parquet", skips, text_field="content")) == ["alpha", "beta"]
    assert skips == {"wrong_type": 1, "empty": 1}


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.jsonl"):
        list(read_documents(tmp_path / "nope.jsonl"))
    with pytest.raises(ConfigError, match="no file matches"):
        resolve_files(str(tmp_path / "*.parquet"))


def test_hash_split_is_deterministic():
    texts = [f"document number {i}" for i in range(2000)]
    val = [t for t in texts if split_of_text(t, 0.1) == "val"]
    assert 120 < len(val) < 280
    assert val == [t for t in texts if split_of_text(t, 0.1) == "val"]


def test_hub_source_with_local_file(tmp_path):
    pytest.importorskip("datasets")
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps({"text": f"hub doc {i}"}) + "\n" for i in range(5)))
    assert len(list(read_documents(f"hf:json:{path}"))) == 5


def test_the_stream_holds_out_the_source_val_fraction(tmp_path, tok):
    from syllabus.config.source import SourceSpec
    from syllabus.data import TextStreamDataset
    from tests.data.test_records import write
    from syllabus.data.held_out import count_held_out

    write(tmp_path / "small" / "train.jsonl", [{"text": f"document {i}: a short line."} for i in range(150)])
    spec = SourceSpec(path=str(tmp_path / "small"), val_fraction=0.2)
    ds = TextStreamDataset(spec, tok, split="val", shuffle=False)
    assert len(ds.units) == 1
    assert len(ds.source[0]["docs"]) == count_held_out(spec).docs > 10  # the one unit's held-out documents
    default = TextStreamDataset(SourceSpec(path=spec.path), tok, split="val", shuffle=False)
    assert len(default.source[0]["docs"]) < 5  # 1% of 150
