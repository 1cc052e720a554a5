"""``prepare`` by parts: the same output at any worker count and task split, resume after SIGKILL, refusal of
changed options, exact dedup across parts, and the tokenizer trained from a bounded sample."""

import gzip
import json
import signal
import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from syllabus.config.errors import ConfigError
from syllabus.data import prepare_shards
from syllabus.data.shards import ShardSet
from syllabus.data.sources import split_of_text
from syllabus.data.tokenizer import load_tokenizer, save_tokenizer, tokenizer_fingerprint
from tests.train.runs import start_and_signal

from .conftest import make_docs, write_jsonl

PART_BYTES = 6000  # small parts: the corpus below has dozens
quiet = lambda *a: None  # noqa: E731


@pytest.fixture
def corpus(tmp_path, real_text):
    """A folder with one large JSONL (duplicates far apart, so in different parts), a .jsonl.gz, a Parquet file
    of several row groups and loose text files; returns (folder, the documents in input order)."""
    folder = tmp_path / "in"
    big = make_docs(real_text, 300, seed=1, tag="big")
    big[250], big[260], big[140] = big[3], big[40], big[41]  # exact duplicates of documents in earlier parts
    write_jsonl(folder / "a.jsonl", big)
    gz = make_docs(real_text, 40, seed=2, tag="gz") + [big[7]]
    with gzip.open(folder / "b.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in gz)
    pq_docs = make_docs(real_text, 60, seed=3, tag="pq")
    pq.write_table(pa.table({"text": pq_docs}), folder / "c.parquet", row_group_size=10)
    loose = make_docs(real_text, 12, seed=4, tag="txt")
    for i, t in enumerate(loose):
        (folder / "d" / f"{i:02d}.txt").parent.mkdir(exist_ok=True)
        (folder / "d" / f"{i:02d}.txt").write_text(t)
    return folder, big + gz + pq_docs + loose


def split_streams(out):
    """Per split: the concatenated token stream and the per-document lengths, as one reader sees them."""
    result = {}
    for split in ("train", "val"):
        shards = ShardSet(out / split)
        docs = [np.asarray(shards.doc_slice(d, 0, int(shards.doc_len[d]))) for d in range(shards.num_docs)]
        result[split] = (np.concatenate(docs).tolist() if docs else [], shards.doc_len.tolist())
    return result


def headers(out):
    return {s: json.loads((out / s / "header.json").read_text()) for s in ("train", "val")}


def prepare(corpus_dir, tok, out, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("echo", quiet)
    return prepare_shards([str(corpus_dir)], tok, out, part_bytes=PART_BYTES, val_fraction=0.2, **kw)


@pytest.fixture
def one_worker(corpus, tok, tmp_path):
    prepare(corpus[0], tok, tmp_path / "w1", workers=1)
    return tmp_path / "w1"


def test_one_two_three_workers_give_the_same_source_as_reading_start_to_end(corpus, tok, tmp_path, one_worker):
    folder, docs = corpus
    report = None
    for workers in (2, 3):
        report = prepare(folder, tok, tmp_path / f"w{workers}", workers=workers)
        assert split_streams(tmp_path / f"w{workers}") == split_streams(one_worker)
        assert headers(tmp_path / f"w{workers}") == headers(one_worker)
    assert report["parts"]["total"] > 10
    # the oracle: every document in input order, first occurrence kept, split by content hash
    seen, expected = set(), {"train": [], "val": []}
    for text in docs:
        if text.strip() not in seen:
            seen.add(text.strip())
            expected[split_of_text(text, 0.2)].append(text)
    for split, texts in expected.items():
        shards = ShardSet(one_worker / split)
        got = [tok.decode(np.asarray(shards.doc_slice(d, 0, int(shards.doc_len[d]) - 1)).tolist())
               for d in range(shards.num_docs)]
        assert got == texts
    assert report["removed"] == {"exact_duplicate": 4}  # three across parts of a.jsonl, one across files


def test_sigkill_mid_way_then_rerun_equals_an_uninterrupted_run(corpus, tok, tmp_path, one_worker):
    tok_path = save_tokenizer(tok, tmp_path / "tok")
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "syllabus", "prepare", str(corpus[0]), "--out", str(out), "--tokenizer",
            str(tok_path), "--workers", "1", "--val-fraction", "0.2", "--part-mb", str(PART_BYTES / 1e6)]
    code = start_and_signal(argv, out / "parts" / "part-00004" / "done.json", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (out / "train" / "header.json").exists()
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    skipped = int(rerun.stdout.split("skipped ")[1].split()[0])
    assert 5 <= skipped < len(list((out / "parts").glob("part-?????")))
    assert split_streams(out) == split_streams(one_worker) and headers(out) == headers(one_worker)
    assert not list((out / "parts").glob("*.tmp-*"))


def test_changed_options_or_tokenizer_are_refused_in_one_line(corpus, tok, tmp_path, one_worker, real_text):
    from syllabus.data import train_tokenizer

    with pytest.raises(ConfigError, match=r"val_fraction: made with 0.2, asked 0.3") as err:
        prepare_shards([str(corpus[0])], tok, one_worker, part_bytes=PART_BYTES, val_fraction=0.3, echo=quiet)
    assert "\n" not in str(err.value)
    other = train_tokenizer(real_text.splitlines()[:50], 300)
    with pytest.raises(ConfigError, match=r"tokenizer: made with"):
        prepare(corpus[0], other, one_worker)
    # a refused run changes nothing
    assert tokenizer_fingerprint(load_tokenizer(one_worker / "tokenizer.json")) == tokenizer_fingerprint(tok)
    before = split_streams(one_worker), headers(one_worker)
    lines = []
    prepare(corpus[0], tok, one_worker, echo=lines.append)  # same options: every part skipped, same output
    assert "skipped" in lines[0] and "preparing 0" in lines[0]
    assert (split_streams(one_worker), headers(one_worker)) == before


def test_two_tasks_in_separate_processes_then_final_equal_one_run(corpus, tok, tmp_path, one_worker):
    tok_path = save_tokenizer(tok, tmp_path / "tok")
    out = tmp_path / "tasks"
    argv = [sys.executable, "-m", "syllabus", "prepare", str(corpus[0]), "--out", str(out), "--tokenizer",
            str(tok_path), "--workers", "1", "--val-fraction", "0.2", "--part-mb", str(PART_BYTES / 1e6)]
    final = subprocess.run(argv + ["--final"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 2 and "parts are not done yet" in final.stderr
    first = subprocess.run(argv + ["--task", "0", "--tasks", "2"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "parts of other tasks remain" in first.stdout and not (out / "train" / "header.json").exists()
    second = subprocess.run(argv + ["--task", "1", "--tasks", "2"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert split_streams(out) == split_streams(one_worker) and headers(out) == headers(one_worker)
    (out / "train" / "header.json").unlink()
    final = subprocess.run(argv + ["--final"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert headers(out) == headers(one_worker)


def test_tokenizer_trains_from_a_bounded_sample_and_reads_the_corpus_once(tmp_path, real_text, monkeypatch):
    import syllabus.data.sources as sources
    import syllabus.data.tokenizer_sample as sample_mod

    docs = make_docs(real_text, 3000, seed=5, tag="d")
    write_jsonl(tmp_path / "big.jsonl", docs)
    read = Counter()
    real_read_unit = sources.read_unit

    def counting(unit, *a, **kw):
        for text in real_read_unit(unit, *a, **kw):
            read["docs"] += 1
            yield text

    monkeypatch.setattr(sources, "read_unit", counting)
    monkeypatch.setattr(sample_mod, "SAMPLE_UNIT_BYTES", 5_000)
    sample_bytes = 60_000
    trained_on = []
    real_train = __import__("syllabus.data.prepare", fromlist=["x"]).train_tokenizer

    def train(texts, vocab):
        texts = list(texts)
        trained_on.extend(texts)
        return real_train(texts, vocab)

    monkeypatch.setattr("syllabus.data.prepare.train_tokenizer", train)
    report = prepare_shards([str(tmp_path / "big.jsonl")], None, tmp_path / "out", vocab_size_to_train=400,
                            workers=1, tokenizer_sample_bytes=sample_bytes, part_bytes=100_000, echo=quiet)
    assert report["complete"] and (tmp_path / "out" / "tokenizer.json").is_file()
    sampled = sum(len(t.encode()) for t in trained_on)
    assert sample_bytes <= sampled < sample_bytes + max(len(d.encode()) for d in docs)
    # read: one pass, plus the sample (a few of its documents are held-out ones, which it passes over)
    assert read["docs"] - len(docs) <= 1.1 * len(trained_on) + 1, (read, len(trained_on))
    # spread over the input: from regions far apart (not its first 60 kB), in a seeded order
    positions = sorted(docs.index(t) for t in trained_on)
    assert positions[-1] - positions[0] > len(docs) // 2 and positions[-1] > len(trained_on)
    first = list(trained_on)
    trained_on.clear()
    read.clear()
    prepare_shards([str(tmp_path / "big.jsonl")], None, tmp_path / "out2", vocab_size_to_train=400, workers=1,
                   tokenizer_sample_bytes=sample_bytes, part_bytes=100_000, echo=quiet)
    assert trained_on == first
    assert (tmp_path / "out2" / "tokenizer.json").read_text() == (tmp_path / "out" / "tokenizer.json").read_text()


def test_a_hub_dataset_is_cut_by_its_shards(tmp_path, real_text, tok):
    for i in range(3):
        write_jsonl(tmp_path / "hub" / f"data-{i}.jsonl", make_docs(real_text, 40, seed=10 + i, tag=f"h{i}"))
    spec = f"hf:json:{tmp_path / 'hub'}/*.jsonl"
    report = prepare_shards([spec], tok, tmp_path / "hub_out", workers=2, val_fraction=0.2, echo=quiet)
    assert report["parts"]["total"] == 3 and not report["removed"]  # one part per data file, each read once
    prepare_shards([str(tmp_path / "hub")], tok, tmp_path / "files_out", workers=1, val_fraction=0.2, echo=quiet)
    assert split_streams(tmp_path / "hub_out") == split_streams(tmp_path / "files_out")


def test_cross_part_dedup_in_hash_partitions_equals_one_pass(tmp_path):
    from syllabus.data.manifest import cross_part_duplicates

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(50, 16), dtype=np.uint8)  # 50 distinct texts, drawn with repeats
    files, seen, expected = [], set(), []
    for i in range(6):
        rows = pool[rng.integers(0, 50, size=40)]
        np.save(tmp_path / f"h{i}.npy", rows)
        files.append(tmp_path / f"h{i}.npy")
        drop = []
        for j, row in enumerate(rows):
            if row.tobytes() in seen:
                drop.append(j)
            seen.add(row.tobytes())
        expected.append(drop)
    for bucket_bytes in (1 << 20, 2000):  # one pass; many hash partitions
        got = cross_part_duplicates(files, bucket_bytes=bucket_bytes)
        assert [g.tolist() for g in got] == expected
