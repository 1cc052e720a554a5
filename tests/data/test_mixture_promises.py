"""What the mixture and the shards promise, checked where the promise is made: shares within one row at every
step, weights changed mid-stream carried by the state (shown by the rows drawn after a restore), and uint32
shards for vocabularies past 65,536 read back intact."""

import numpy as np
import torch

from syllabus.data import open_batches, prepare_shards, with_replay
from syllabus.data.shard_stream import ShardRowStream
from syllabus.data.shards import ShardSet, ShardWriter, token_dtype


def shards_of(three_sources, tok, tmp_path) -> dict[str, str]:
    out = {}
    for name, raw in three_sources.items():
        prepare_shards([raw], tok, tmp_path / "shards" / name, workers=1, echo=lambda s: None)
        out[name] = str(tmp_path / "shards" / name)
    return out


def test_every_source_is_within_one_row_of_its_share_after_every_row(three_sources, tok, tmp_path):
    weights = {"wiki": 0.5, "math": 0.3, "code": 0.2}
    batches = open_batches(shards_of(three_sources, tok, tmp_path), weights, tok, seed=5)
    worst = 0.0
    for row in range(600):
        seq_len = (31, 63, 127)[row % 3]  # rows of different lengths: the accounting is in tokens
        batches.next_batch(1, seq_len)
        report = batches.mix_report()
        total = sum(r["tokens"] for r in report.values())
        for name, share in weights.items():
            off = abs(report[name]["tokens"] - share * total)
            worst = max(worst, off / 128)
            assert off <= 128, (row, name, report[name]["tokens"], share * total)  # one longest row
    assert worst > 0.1  # the bound is tight enough to mean something: deviations do reach a sizeable row part


def test_weights_set_mid_stream_travel_with_the_state_and_steer_the_rows(three_sources, tok, tmp_path):
    sources = shards_of(three_sources, tok, tmp_path)
    batches = open_batches(sources, {"wiki": 1, "math": 0, "code": 0}, tok)
    for _ in range(10):
        batches.next_batch(4, 64)
    batches.set_weights(with_replay({"math": 1.0}, {"wiki": 1.0}, 0.25))
    state = batches.state_dict()
    again = open_batches(sources, {"wiki": 1, "math": 0, "code": 0}, tok)  # opened with the old weights
    again.load_state_dict(state)
    for _ in range(30):
        assert torch.equal(batches.next_batch(4, 64)["input_ids"], again.next_batch(4, 64)["input_ids"])
    assert again.mix_report()["math"]["tokens"] > 0  # the restored stream really draws from math now


def test_uint32_shards_hold_ids_past_65535_and_read_back(tmp_path):
    assert token_dtype(70_000) == np.uint32 and token_dtype(65_536) == np.uint16
    docs = [np.array([0, 65_535, 65_536, 69_999, 0], dtype=np.int64), np.arange(66_000, 66_010, dtype=np.int64)]
    writer = ShardWriter(tmp_path / "train", dtype=token_dtype(70_000), meta={})
    for doc in docs:
        writer.add(doc)
    assert writer.close()["dtype"] == "uint32"
    shards = ShardSet(tmp_path / "train")
    assert [shards.doc_slice(i, 0, len(d)).tolist() for i, d in enumerate(docs)] == [d.tolist() for d in docs]
    stream = ShardRowStream(shards, shuffle=False)
    row = stream.read_row(15)
    assert row.dtype.itemsize >= 4 and sorted(row.tolist()) == sorted(np.concatenate(docs).tolist())
