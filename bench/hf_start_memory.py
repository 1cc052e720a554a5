"""Peak host memory while a run starts from a Hugging Face checkpoint: one process reading all of it
(``load_hf_model``) vs each of N gloo ranks under FSDP2 reading only its slices (``meta_model`` →
``fully_shard`` → ``materialize_from_hf``, the path ``strategy: fsdp`` takes).

The checkpoint is a random Llama-shaped fp32 model written once (``--hidden``, ``--layers``; default ~600 MB), in
``--shards`` files as ``save_pretrained`` splits a large model (default 8; 1 = a single ``model.safetensors``).
RSS counts the checkpoint pages a process has mapped (``safe_open`` memory-maps each file while it reads it), so
a one-file checkpoint adds the rank's slice of the whole file to its peak; with shards, one file's slice at a time.
Each process reports the rise of its RSS high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``)
above its RSS just before loading: the memory the load itself needed, model included. The last line is JSON.

    .venv/bin/python bench/hf_start_memory.py [--ranks 2] [--hidden 1024] [--layers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss_kb("VmRSS")


def make(folder: Path, hidden: int, layers: int, shards: int) -> None:
    import torch
    from safetensors.torch import save_file

    from syllabus.config.model import ModelConfig
    from syllabus.hf.architectures import hf_config_of
    from syllabus.model import Transformer

    config = ModelConfig(vocab_size=32000, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 256,
                         intermediate_size=hidden * 11 // 4, max_position_embeddings=2048, tie_word_embeddings=False,
                         architecture="LlamaForCausalLM")
    torch.manual_seed(0)
    model = Transformer(config)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
    else:  # as save_pretrained shards a large model: model-0000i-of-0000K.safetensors + the index
        names, weight_map = list(state), {}
        for i in range(shards):
            file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = names[i * len(names) // shards:(i + 1) * len(names) // shards]
            save_file({n: state[n] for n in part}, str(folder / file))
            weight_map.update({n: file for n in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(hf_config_of(config, bos=1, eos=2, pad=2, dtype="float32")))


def load_full(folder: Path) -> dict:
    from syllabus.hf.weights import load_hf_model

    base = reset_peak()
    model = load_hf_model(folder)
    return {"rank": "single", "rise_mb": (rss_kb("VmHWM") - base) / 1024,
            "params": sum(p.numel() for p in model.parameters())}


def load_sharded(folder: Path) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from syllabus.hf.sharded import materialize_from_hf, meta_model

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    base = reset_peak()
    model = meta_model(folder)
    for block in model.model.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    materialize_from_hf(model, torch.device("cpu"))
    local = sum(p.to_local().numel() for p in model.parameters())
    row = {"rank": dist.get_rank(), "rise_mb": (rss_kb("VmHWM") - base) / 1024, "local_params": local}
    dist.destroy_process_group()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--shards", type=int, default=8, help="safetensors files (1: one model.safetensors)")
    parser.add_argument("--role", choices=["full", "sharded"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        row = load_full(Path(args.folder)) if args.role == "full" else load_sharded(Path(args.folder))
        (Path(args.folder).parent / f"row-{row['rank']}.json").write_text(json.dumps(row))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        make(folder, args.hidden, args.layers, args.shards)
        size_mb = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20
        me = [sys.executable, __file__, "--folder", str(folder)]
        subprocess.run([*me, "--role", "full"], capture_output=True, env=env, check=True)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}",
                        __file__, "--folder", str(folder), "--role", "sharded"], capture_output=True, env=env,
                       check=True)
        rows = [json.loads(f.read_text()) for f in sorted(Path(tmp).glob("row-*.json"))]
    print(f"checkpoint: {size_mb:.0f} MB (fp32 safetensors, {args.shards} file(s))")
    print(f"{'process':>10} {'peak RSS rise while loading':>28}")
    for row in rows:
        print(f"{row['rank']!s:>10} {row['rise_mb']:>25.0f} MB  ({row['rise_mb'] / size_mb:.2f} x checkpoint)")
    print(json.dumps({"checkpoint_mb": round(size_mb, 1), "shards": args.shards, "rows": rows}))


if __name__ == "__main__":
    main()
