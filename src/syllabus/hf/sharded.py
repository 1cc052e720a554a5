"""Starting several ranks from one Hugging Face checkpoint without any rank holding all of it.

- FSDP2: the model is built on the meta device (``meta_model``: no storage), sharded by ``fully_shard``, and only
  then given memory on the rank's device (``materialize_from_hf``): each rank allocates its own shards and reads
  just those rows from the safetensors files through DCP's ``HuggingFaceStorageReader`` (``safe_open`` slices,
  the torchtitan way), cast to the parameter's dtype as they land, one transformer block per read.
- DDP: only the main rank reads (``load_hf_model``); the others build the shape, and DistributedDataParallel's
  own start-up broadcast (``init_sync``) hands them rank 0's weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from syllabus.hf.folder import read_hf_config
from syllabus.hf.weights import expected_names
from syllabus.model import Transformer
from syllabus.model.rotary import rotary_tables

PENDING = "hf_folder"  # attribute a meta model carries until materialize_from_hf has filled it


def meta_model(folder: str | Path) -> Transformer:
    """A ``Transformer`` of ``folder``'s shape on the meta device, marked to be filled from ``folder`` once sharded."""
    with torch.device("meta"):
        model = Transformer(read_hf_config(folder))
    setattr(model, PENDING, str(folder))
    return model


def is_pending(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a ``meta_model`` not yet filled (its parameters have no storage)."""
    return getattr(model, PENDING, None) is not None


@torch.no_grad()
def materialize_from_hf(model: Transformer, device: torch.device) -> None:
    """Allocate ``model``'s (already ``fully_shard``-ed) parameters on ``device`` and read this rank's slices of
    the checkpoint into them; the RoPE tables are computed again (they are not in the checkpoint). Collective:
    every rank calls it. Raises ``ConfigError`` when the checkpoint does not fit its config."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    folder = getattr(model, PENDING)
    names = expected_names(model, folder)
    model.to_empty(device=device)
    c = model.config
    cos, sin = rotary_tables(c.head_size, c.max_position_embeddings, c.rope_theta, c.rope_scaling)
    model.rope_cos, model.rope_sin = cos.to(device), sin.to(device)
    state = model.state_dict()
    groups: dict[str, list[str]] = {}  # one read per block: safe_open maps a file while it reads, and the pages
    for name in names:                 # a read touched leave the RSS only when it closes the file
        groups.setdefault(".".join(name.split(".")[:3]) if name.startswith("model.layers.") else "rest", []).append(name)
    for group in groups.values():
        dcp.load({name: state[name] for name in group}, storage_reader=HuggingFaceStorageReader(folder))
    delattr(model, PENDING)


def start_from_hf(folder: str | Path, *, sharded: bool, reads: bool) -> Transformer:
    """The model a run starts from ``folder``: a ``meta_model`` under FSDP2 (``sharded``), the shape alone with
    fresh weights where this rank does not read (``reads`` False: a DDP rank other than the main one, which
    receives rank 0's weights when DistributedDataParallel wraps it), else the checkpoint's weights (fp32, CPU)."""
    from syllabus.hf.weights import load_hf_model

    if sharded:
        return meta_model(folder)
    return load_hf_model(folder) if reads else Transformer(read_hf_config(folder))
