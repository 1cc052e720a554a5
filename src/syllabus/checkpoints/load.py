"""Reading a checkpoint back: weights (single file or FSDP2 shards), trainer state, a ready model.

Nothing here unpickles arbitrary objects (``torch.load(weights_only=True)``), starts a process group or
knows about training: ``evaluate``, ``export`` and ``generate`` load a trained model through ``load_model``.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from syllabus.checkpoints.folder import MODEL_FILE, SHARDED_DIR, STATE_FILE, CheckpointError, resolve_checkpoint


def is_sharded(path: str | Path) -> bool:
    """Whether the checkpoint folder holds FSDP2 shards (``sharded/.metadata``) instead of ``model.safetensors``."""
    return (Path(path) / SHARDED_DIR / ".metadata").is_file()


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Full weights in Hugging Face names (CPU tensors, saved dtype), from either format."""
    if is_sharded(path):
        return load_full_model_state(path)
    return load_file(str(Path(path) / MODEL_FILE))


def load_trainer_state(path: str | Path) -> dict:
    """Optimizer, counters, RNG and data position. Only tensors and plain data are read back: a file holding any
    other object (a pickle that would run code on load) is refused with ``CheckpointError`` before anything runs."""
    try:
        return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = " ".join(str(err).split())[:300]
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} holds objects other than tensors and plain data; "
                              f"refused to load it (nothing in it was run): {reason}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode on ``device``, tokenizer) from a checkpoint, a checkpoints folder or a run folder.

    Raises ``CheckpointError`` when no valid checkpoint is found or the weights do not fit the saved shape."""
    from syllabus.config.model import ModelConfig
    from syllabus.data.tokenizer import load_tokenizer
    from syllabus.model import Transformer

    path = resolve_checkpoint(path)
    config = ModelConfig.model_validate_json((path / "model_config.json").read_text())
    model = Transformer(config)
    load_weights(model, load_model_state(path))
    return model.to(device).eval(), load_tokenizer(path / "tokenizer.json")


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` in place; a tied ``lm_head`` may be absent. Raises ``CheckpointError``
    naming the missing and unexpected keys when the weights do not fit."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        raise CheckpointError(f"weights do not fit the model: missing {sorted(set(missing) - allowed_missing)}, "
                              f"unexpected {sorted(unexpected)}")


def load_full_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's full state dict (Hugging Face names) from a sharded checkpoint, in this process alone.

    Tensors are allocated from the DCP metadata, so no model needs to exist yet (as for export)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    folder = str(Path(path) / SHARDED_DIR)
    metadata = dcp.FileSystemReader(folder).read_metadata()
    state = {}
    for key, meta in metadata.state_dict_metadata.items():
        if key.startswith("model.") and isinstance(meta, TensorStorageMetadata):
            state[key.removeprefix("model.")] = torch.empty(meta.size, dtype=meta.properties.dtype)
    read_sharded({"model": state}, path, collective=False)
    return state


def read_sharded(state: dict, path: str | Path, collective: bool) -> None:
    """``dcp.load`` of ``path/sharded`` into ``state`` in place; ``collective`` False reads in this process alone."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process", category=UserWarning)
        dcp.load(state, checkpoint_id=str(Path(path) / SHARDED_DIR), no_dist=not collective)
