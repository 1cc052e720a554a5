"""``hf:`` sources streamed by ``datasets`` over local files: rendering, exact resume, rank-consistent order,
held-out rows, and SIGKILL mid-stage."""

import json
import signal
import sys

import pytest
import torch

from syllabus.config.source import SourceSpec
from syllabus.data import iter_eval_batches, open_batches
from tests.train.runs import run, start_and_signal, step_losses
from tests.conftest import TINY_FLAGS


@pytest.fixture
def chat_files(tmp_path, real_text):
    lines = [line for line in real_text.splitlines() if line.strip()]
    folder = tmp_path / "mot"
    folder.mkdir()
    for part in range(2):
        with open(folder / f"part-{part}.jsonl", "w") as f:
            for i in range(150):
                text = lines[(part * 150 + i) % len(lines)][:60]
                f.write(json.dumps({"messages": [{"role": "user", "content": f"Question {part}-{i}?"},
                                                 {"role": "assistant", "content": f"<think>{text}</think>ok"}]})
                        + "\n")
    return f"hf:json:{folder}/*.jsonl"


def batches_of(spec, tok, **kw):
    return open_batches({"reasoning": SourceSpec(path=spec, format="chat")}, {"reasoning": 1.0}, tok, seed=5, **kw)


def test_hub_rows_render_chat_and_resume_exactly(chat_files, tok, monkeypatch):
    monkeypatch.setattr("syllabus.data.hub_stream.ROWS_PER_UNIT", 32)
    ref = batches_of(chat_files, tok)
    expected = [ref.next_batch(2, 64) for _ in range(220)]
    text = tok.decode(expected[0]["input_ids"][0].tolist())
    assert "User: Question" in text or "Assistant: <think>" in text or "</think>ok" in text
    first = batches_of(chat_files, tok)
    got = [first.next_batch(2, 64) for _ in range(23)]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = batches_of(chat_files, tok)
    resumed.load_state_dict(state)
    got += [resumed.next_batch(2, 64) for _ in range(197)]
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(got, expected))
    assert ref.mix_report()["reasoning"]["epochs"] > 1  # went round the stream more than once


def test_two_ranks_see_one_ranks_rows_exactly_once(chat_files, tok, monkeypatch):
    monkeypatch.setattr("syllabus.data.hub_stream.ROWS_PER_UNIT", 32)
    one = batches_of(chat_files, tok)
    ranks = [batches_of(chat_files, tok, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(20):
        whole = one.next_batch(4, 48)["input_ids"]
        parts = torch.cat([b.next_batch(2, 48)["input_ids"] for b in ranks])
        assert torch.equal(whole, parts)


def test_held_out_rows_by_hash_when_no_validation_split(chat_files, tok):
    spec = SourceSpec(path=chat_files, format="chat")
    val = [b["input_ids"] for b in iter_eval_batches(spec, tok, seq_len=32, batch_size=2, split="val")]
    train = batches_of(chat_files, tok)
    assert val, "some rows are held out"
    val_rows = {tuple(r.tolist()) for b in val for r in b}
    seen = {tuple(r.tolist()) for _ in range(50) for r in train.next_batch(4, 32)["input_ids"]}
    assert not val_rows & seen


@pytest.mark.slow
def test_sigkill_mid_stage_resumes_with_identical_losses(chat_files, tok, tmp_path):
    tok.save(str(tmp_path / "tok.json"))

    def argv(out):
        return [sys.executable, "-m", "syllabus", "pretrain", "--data-sources", chat_files, "--format", "chat",
                "--tokenizer", str(tmp_path / "tok.json"), "--out", str(out), "--max-steps", "30",
                "--save-interval", "10", "--resume", "auto", "--max-seq-length", "64", "--batch-size", "4",
                "--warmup-steps", "2", "--eval-interval", "1000", "--log-interval", "1", "--mixed-precision",
                "fp32", "--device", "cpu", *TINY_FLAGS]

    run(argv(tmp_path / "straight"))
    code = start_and_signal(argv(tmp_path / "killed"), tmp_path / "killed" / "checkpoints" / "step_10" /
                            "manifest.json", signal.SIGKILL)
    assert code == -signal.SIGKILL
    run(argv(tmp_path / "killed"))
    assert step_losses(tmp_path / "killed") == step_losses(tmp_path / "straight")
    assert len(step_losses(tmp_path / "straight")) == 30
