"""Peak host memory of each rank while building an FSDP2 model: the full build then ``fully_shard`` (before), and
the meta build, ``fully_shard``, then ``init_sharded`` (``train/sharded_init.py``, after).

    .venv/bin/python bench/fsdp_build_memory.py                 # the `small` preset, 2 gloo ranks on the CPU
    .venv/bin/python bench/fsdp_build_memory.py --preset tiny --ranks 4

Each variant runs in fresh processes (``torch.multiprocessing.spawn``): every rank joins a gloo group, imports
and warms up torch, notes its RSS, resets the high-water mark (``/proc/self/clear_refs``), builds and shards the
model as ``DistContext.wrap`` does (fp32, no compile), and reports ``VmHWM`` minus the RSS before. The full
model's fp32 size is parameters x 4 bytes. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def rank_main(rank: int, ranks: int, port: int, preset: str, variant: str, out: str) -> None:
    import ctypes

    import torch
    import torch.distributed as dist

    from syllabus.config import PreTrainingConfig
    from syllabus.config.model import model_config_for
    from syllabus.model import Transformer
    from syllabus.train.distributed import DistContext
    from syllabus.train.sharded_init import build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    torch.set_num_threads(1)
    config = model_config_for(preset)
    Transformer(model_config_for("tiny", vocab_size=256, hidden_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64))  # warm up allocator and kernels
    dist.barrier()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    torch.manual_seed(0)
    model = build_model(config, sharded=variant == "after")
    DistContext(rank, ranks, 0, torch.device("cpu"), "fsdp").wrap(model, PreTrainingConfig(mixed_precision="fp32"))
    peak = (rss_kb("VmHWM") - base) * 1024
    params = sum(p.numel() for p in model.parameters())
    with open(f"{out}.{rank}", "w") as f:
        json.dump({"peak_bytes": peak, "params": params}, f)
    dist.barrier()
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("before", "after"):
            out = os.path.join(tmp, variant)
            mp.spawn(rank_main, args=(args.ranks, free_port(), args.preset, variant, out), nprocs=args.ranks,
                     join=True)
            rows[variant] = [json.load(open(f"{out}.{r}")) for r in range(args.ranks)]
    params = rows["after"][0]["params"]
    full = params * 4
    print(f"FSDP2 build of the `{args.preset}` preset ({params / 1e6:.1f}M parameters, {full / 2**20:.0f} MiB in "
          f"fp32) on {args.ranks} gloo ranks: peak RSS above the start, per rank")
    for variant, per_rank in rows.items():
        peaks = ", ".join(f"{r['peak_bytes'] / 2**20:.0f} MiB" for r in per_rank)
        print(f"  {variant:6s}: {peaks}  (max {max(r['peak_bytes'] for r in per_rank) / full:.2f} x the full model)")
    print(json.dumps({"preset": args.preset, "ranks": args.ranks, "params": params, "full_model_bytes": full,
                      **{f"{v}_peak_bytes": [r["peak_bytes"] for r in rs] for v, rs in rows.items()}}))


if __name__ == "__main__":
    main()
