"""Under FSDP2 the model is built on the meta device, sharded, then initialised: each rank allocates only its
shards, and the weights are bit for bit those of a normal build from the same seed (2 gloo ranks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from syllabus.config import PreTrainingConfig
from syllabus.config.model import model_config_for

pytestmark = pytest.mark.slow

SHAPE = dict(vocab_size=260, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=96, tie_word_embeddings=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from syllabus.model import Transformer
    from syllabus.train.distributed import DistContext
    from syllabus.train.sharded_init import build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    config = model_config_for("tiny", **SHAPE)
    torch.manual_seed(7)
    model = build_model(config, sharded=True)
    assert all(p.is_meta for p in model.parameters())
    ctx = DistContext(rank, 2, 0, torch.device("cpu"), "fsdp")
    ctx.wrap(model, PreTrainingConfig(mixed_precision="fp32"))
    after = torch.rand(3)  # the RNG goes on from where the normal build leaves it
    local = {n: p.to_local().numel() for n, p in model.named_parameters()}
    full = {n: p.full_tensor() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    if rank == 0:
        torch.manual_seed(7)
        reference = Transformer(config)
        torch.save({"full": full, "buffers": buffers, "after": after, "local": local,
                    "reference": dict(reference.named_parameters()), "ref_buffers": dict(reference.named_buffers()),
                    "ref_after": torch.rand(3)}, out)
    dist.barrier()
    dist.destroy_process_group()


def spawn_ranks(out: str) -> None:
    mp.spawn(rank_main, args=(free_port(), out), nprocs=2, join=True)


def test_meta_build_sharded_then_initialised_equals_the_normal_build(tmp_path):
    out = str(tmp_path / "result.pt")
    # In a process of its own: spawning starts multiprocessing's resource tracker, which would outlive the test
    # as a child of pytest (the sandbox tests check that evaluation leaves no process behind).
    subprocess.run([sys.executable, __file__, out], check=True, timeout=600)
    got = torch.load(out)
    assert got["full"].keys() == got["reference"].keys()
    for name, value in got["reference"].items():
        assert torch.equal(got["full"][name], value.detach()), name
    for name, value in got["ref_buffers"].items():
        assert torch.equal(got["buffers"][name], value), name
    assert torch.equal(got["after"], got["ref_after"])
    # each rank holds half of every parameter (dim 0 sharded), not the whole
    assert all(got["local"][n] * 2 == v.numel() for n, v in got["reference"].items())


if __name__ == "__main__":
    spawn_ranks(sys.argv[1])
