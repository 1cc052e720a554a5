"""A Hugging Face checkpoint's tensors into syllabus's decoder: one ``model.safetensors`` or the shards an
``model.safetensors.index.json`` names.

Parameter names are the same on both sides; a tied head may be absent or present (it is the embedding), the
rotary ``inv_freq`` buffers old checkpoints carry are skipped, and every tensor is copied into the parameter's
own dtype. ``load_hf_weights`` reads tensors one at a time through ``safe_open`` (memory-mapped, closed after
each), so the host never holds a second full copy of the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from syllabus.config.errors import ConfigError
from syllabus.hf.folder import read_hf_config
from syllabus.model import Transformer

SKIPPED = ("rotary_emb.inv_freq",)


def weight_map(folder: str | Path) -> dict[str, str]:
    """Tensor name → the safetensors file (in ``folder``) that holds it."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return {name: "model.safetensors" for name in f.keys()}


def iter_hf_tensors(folder: str | Path, names: list[str]) -> Iterator[tuple[str, object]]:
    """(name, safetensors slice handle) for each of ``names``, valid until the next one; a handle's ``[...]`` reads
    the whole tensor, ``[a:b]`` only those rows. The file is opened per tensor: ``safe_open`` memory-maps it, and
    the pages a read touched count in the RSS until it is closed (measured in docs/continued-pretraining.md)."""
    files = weight_map(folder)
    for name in names:
        with safe_open(str(Path(folder) / files[name]), framework="pt") as f:
            yield name, f.get_slice(name)


def expected_names(model: Transformer, folder: str | Path) -> list[str]:
    """The checkpoint tensors ``model`` needs, checked against the folder's: ``ConfigError`` naming what is missing
    or left over (a tied head may be either)."""
    held = {n for n in weight_map(folder) if not n.endswith(SKIPPED)}
    wanted = set(model.state_dict())
    if model.config.tie_word_embeddings:
        wanted.discard("lm_head.weight")
        held.discard("lm_head.weight")
    missing, unexpected = sorted(wanted - held), sorted(held - wanted)
    if missing or unexpected:
        raise ConfigError(f"model.from: {folder} does not fit its config: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}")
    return sorted(wanted)


@torch.no_grad()
def load_hf_weights(model: Transformer, folder: str | Path) -> None:
    """Copy the folder's tensors into ``model`` (full, unsharded parameters) in place, cast to their dtypes.
    Raises ``ConfigError`` when a name or shape does not fit."""
    state = model.state_dict()
    for name, handle in iter_hf_tensors(folder, expected_names(model, folder)):
        target = state[name]
        if tuple(handle.get_shape()) != tuple(target.shape):
            raise ConfigError(f"model.from: {name} has shape {tuple(handle.get_shape())} in {folder}, "
                              f"config.json implies {tuple(target.shape)}")
        target.copy_(handle[...])


def load_hf_model(folder: str | Path) -> Transformer:
    """A ``Transformer`` of ``folder``'s shape holding its weights (fp32, CPU, train mode)."""
    model = Transformer(read_hf_config(folder))
    load_hf_weights(model, folder)
    return model
