import pytest

from syllabus.config.errors import ConfigError
from syllabus.data import DataExhausted, open_batches, prepare_shards, with_replay


@pytest.fixture
def shard_sources(three_sources, tok, tmp_path):
    out = {}
    for name, raw in three_sources.items():
        prepare_shards([raw], tok, tmp_path / "shards" / name, workers=1, echo=lambda s: None)
        out[name] = str(tmp_path / "shards" / name)
    return out


def test_realized_shares_within_one_percent_after_1m_tokens(shard_sources, tok):
    weights = {"wiki": 0.6, "math": 0.3, "code": 0.1}
    batches = open_batches(shard_sources, weights, tok, seed=3)
    seen = 0
    while seen < 1_000_000:
        b = batches.next_batch(8, 255 if seen % 2 else 127)  # changing seq_len keeps token accounting
        seen += b["input_ids"].numel() + b["input_ids"].shape[0]
    report = batches.mix_report()
    total = sum(r["tokens"] for r in report.values())
    assert total == seen
    for name, w in weights.items():
        assert abs(report[name]["tokens"] / total - w) < 0.01
        assert report[name]["target_share"] == pytest.approx(w)
    assert report["code"]["epochs"] > 10  # the small source repeats; epochs are counted
    assert set(batches.skipped()) == set(weights)


def test_set_weights_mid_stream_is_part_of_state(shard_sources, tok):
    batches = open_batches(shard_sources, {"wiki": 1, "math": 0, "code": 0}, tok)
    for _ in range(20):
        batches.next_batch(4, 64)
    assert batches.mix_report()["math"]["tokens"] == 0
    batches.set_weights(with_replay({"math": 1.0}, {"wiki": 1.0}, 0.25))
    state = batches.state_dict()
    for _ in range(200):
        batches.next_batch(4, 64)
    report = batches.mix_report()
    since = {name: row["realized_share_since_change"] for name, row in report.items()}
    assert abs(since["wiki"] - 0.25) < 0.01 and abs(since["math"] - 0.75) < 0.01
    again = open_batches(shard_sources, {"wiki": 1}, tok)
    again.load_state_dict(state)
    assert again.mix_report()["math"]["target_share"] == 0.75


def test_with_replay():
    assert with_replay({"math": 2}, {"wiki": 3, "code": 1}, 0.1) == pytest.approx(
        {"math": 0.9, "wiki": 0.075, "code": 0.025})
    assert with_replay({"a": 1, "b": 1}, {"a": 1}, 0.2) == pytest.approx({"a": 0.6, "b": 0.4})
    with pytest.raises(ConfigError, match="fraction"):
        with_replay({"a": 1}, {"b": 1}, 1.5)


def test_max_epochs_redistributes_then_exhausts(shard_sources, tok):
    batches = open_batches(shard_sources, {"wiki": 0.5, "code": 0.5}, tok, max_epochs={"wiki": 1, "code": 2})
    with pytest.raises(DataExhausted):
        for _ in range(100_000):
            batches.next_batch(2, 63)
    report = batches.mix_report()
    assert report["wiki"]["epochs"] <= 1 and report["code"]["epochs"] <= 2
    assert report["wiki"]["epochs"] > 0.95 and report["code"]["epochs"] > 1.95
    assert report["math"]["tokens"] == 0


def test_unknown_weight_name(shard_sources, tok):
    with pytest.raises(ConfigError, match="weights.nope"):
        open_batches(shard_sources, {"nope": 1}, tok)
