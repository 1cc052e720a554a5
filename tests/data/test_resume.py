"""Exact resume of a mixed, shuffled, streamed JSONL dataset (in process and after SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from syllabus.data import TextStreamDataset, open_batches, save_tokenizer

WEIGHTS = {"wiki": 0.5, "math": 0.3, "code": 0.2}
SCHEDULE = [(2, 32), (3, 48), (2, 16)]  # (micro_batch_size, seq_len): a curriculum that changes


def run(batches, steps, start=0):
    out = []
    for i in range(start, start + steps):
        b, t = SCHEDULE[i % len(SCHEDULE)]
        out.append(batches.next_batch(b, t))
    return out


def same(a, b):
    return len(a) == len(b) and all(all(torch.equal(x[k], y[k]) for k in x) and x.keys() == y.keys()
                                    for x, y in zip(a, b))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_dict_round_trip_resumes_exactly(three_sources, tok, num_workers, monkeypatch):
    monkeypatch.setattr("syllabus.data.sources.UNIT_BYTES", 3000)  # many units: exercises unit shuffling
    ref = open_batches(three_sources, WEIGHTS, tok, seed=7, doc_attention=True)
    expected = run(ref, 400)
    first = open_batches(three_sources, WEIGHTS, tok, seed=7, doc_attention=True, num_workers=num_workers)
    got = run(first, 123)
    state = json.loads(json.dumps(first.state_dict()))
    assert len(json.dumps(state)) < 4000
    first.close()
    resumed = open_batches(three_sources, WEIGHTS, tok, seed=7, doc_attention=True, num_workers=num_workers)
    resumed.load_state_dict(state)
    got += run(resumed, 277, start=123)
    resumed.close()
    assert same(got, expected)
    # streams went through more than one unit/epoch of the small sources, shuffled differently per seed
    assert ref.mix_report()["code"]["epochs"] > 1
    other = open_batches(three_sources, WEIGHTS, tok, seed=8)
    assert not torch.equal(other.next_batch(2, 32)["input_ids"], expected[0]["input_ids"])


def test_text_stream_unpacked_pads_whole_documents(three_sources, tok):
    ds = TextStreamDataset(three_sources["math"], tok, packed=False, seed=1)
    batch = ds.next_batch(4, 512)
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= 512
    pad_positions = batch["labels"] == -100
    assert pad_positions.any()
    assert (batch["input_ids"][pad_positions] == 1).all()
    state = ds.state_dict()
    nxt = ds.next_batch(3, 512)
    ds.load_state_dict(state)
    assert torch.equal(ds.next_batch(3, 512)["input_ids"], nxt["input_ids"])


def test_text_stream_in_a_dataloader_keeps_global_order(three_sources, tok):
    ds = TextStreamDataset(three_sources["wiki"], tok, seq_len=32, seed=3, loader_batch_size=4)
    ref = [r["input_ids"] for r, _ in zip(iter(TextStreamDataset(three_sources["wiki"], tok,
                                                                             seq_len=32, seed=3)), range(12))]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    got = [row for batch, _ in zip(loader, range(3)) for row in batch["input_ids"]]
    assert all(torch.equal(a, b) for a, b in zip(ref, got)) and len(got) == 12


CHILD = r"""
import json, os, sys
from syllabus.data import open_batches
from syllabus.data.tokenizer import load_tokenizer
sys.path.insert(0, {tests!r})
from data.test_resume import SCHEDULE
sources, tok_path, log_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
b = open_batches(sources, {weights!r}, load_tokenizer(tok_path), seed=7, num_workers=2)
with open(log_path, "a") as log:
    i = 0
    while True:
        mb, t = SCHEDULE[i % len(SCHEDULE)]
        ids = b.next_batch(mb, t)["input_ids"].tolist()
        log.write(json.dumps({{"step": i, "ids": ids, "state": b.state_dict()}}) + "\n")
        log.flush(); os.fsync(log.fileno())
        i += 1
"""


def test_resume_after_sigkill(three_sources, tok, tmp_path):
    from tests.faults.harness import alive  # not at the top: CHILD imports this module without `tests`

    tok_path = save_tokenizer(tok, tmp_path / "tok")
    log_path = tmp_path / "log.jsonl"
    script = CHILD.format(tests=str(Path(__file__).parents[1]), weights=WEIGHTS)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(three_sources), str(tok_path), str(log_path)],
                            env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        if log_path.exists() and sum(1 for _ in open(log_path)) >= 15:
            break
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read().decode())
        time.sleep(0.05)
    workers = children_of(proc.pid)
    assert workers, "the run should have DataLoader workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "DataLoader workers outlived the killed run"
    records = [json.loads(line) for line in open(log_path) if line.endswith("\n")]
    cut = records[len(records) // 2]
    resumed = open_batches(three_sources, WEIGHTS, tok, seed=7, num_workers=0)
    resumed.load_state_dict(cut["state"])
    after = run(resumed, 10, start=cut["step"] + 1)
    ref = run(open_batches(three_sources, WEIGHTS, tok, seed=7), max(len(records), cut["step"] + 11))
    assert [r["ids"] for r in records] == [b["input_ids"].tolist() for b in ref[: len(records)]]
    assert same(after, ref[cut["step"] + 1: cut["step"] + 11])


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found




def test_read_ahead_auto_rule():
    from syllabus.data.text_stream import read_ahead_workers

    assert read_ahead_workers(3, cores=16, local_ranks=1, threads=8) == 2  # 8 free cores over 3 sources
    assert read_ahead_workers(5, cores=96, local_ranks=8, threads=1) == 2  # a GPU node under torchrun: 88 // 40
    assert read_ahead_workers(1, cores=64, local_ranks=1, threads=1) == 4  # at most MAX_AUTO_WORKERS
    assert read_ahead_workers(1, cores=2, local_ranks=1, threads=2) == 0  # every core runs matmuls
    assert read_ahead_workers(1, cores=10, local_ranks=8, threads=1) == 0  # 2 free, 8 needed
    assert read_ahead_workers(0, cores=64, local_ranks=1, threads=1) == 0  # prepared shards only


def test_read_ahead_auto_gives_the_same_rows(three_sources, tok, monkeypatch):
    """``num_workers="auto"`` hands the rule's answer to every raw source, and the rows do not change."""
    monkeypatch.setattr("syllabus.data.sources.UNIT_BYTES", 3000)
    asked = []
    monkeypatch.setattr("syllabus.data.batches.read_ahead_workers", lambda n: asked.append(n) or 1)
    expected = run(open_batches(three_sources, WEIGHTS, tok, seed=7), 60)
    auto = open_batches(three_sources, WEIGHTS, tok, seed=7, num_workers="auto")
    assert asked == [3] and {s.num_workers for s in auto.mixture.streams.values()} == {1}
    assert same(run(auto, 60), expected)
    auto.close()
