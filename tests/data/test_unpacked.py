"""packing: false through the mixture: whole documents, padded per micro-batch, the same global order at any
world size, for raw and prepared sources."""

import torch

from syllabus.data import open_batches, prepare_shards


def test_unpacked_batches_hold_whole_documents_and_ranks_split_them(three_sources, tok, tmp_path):
    prepare_shards(three_sources["math"], tok, tmp_path / "math", workers=1, echo=lambda *_: None)
    sources = {"wiki": three_sources["wiki"], "math": str(tmp_path / "math")}
    weights = {"wiki": 0.5, "math": 0.5}
    one = open_batches(sources, weights, tok, seed=3, packed=False)
    ranks = [open_batches(sources, weights, tok, seed=3, packed=False, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(5):
        whole = one.next_batch(8, 512)
        parts = [b.next_batch(4, 512) for b in ranks]
        eos = 0
        for row in range(8):
            part = parts[row // 4]
            real = whole["labels"][row][whole["labels"][row] != -100]
            assert torch.equal(real, part["labels"][row % 4][part["labels"][row % 4] != -100])
            assert real[-1] == eos  # a whole document ends with its EOS (none is longer than 512 here)
        assert (whole["labels"] == -100).any()
    shares = {k: v["tokens"] for k, v in one.mix_report().items()}
    assert abs(shares["wiki"] / sum(shares.values()) - 0.5) < 0.1
