"""Writing checkpoints: one folder per save, written aside and renamed into place, checked by a manifest.

The folder's layout, its verification and reading it back live in ``syllabus.checkpoints`` (below ``train``,
so evaluation and export need no training code); the names are re-exported here for the training code. Every
file is hashed while it is written (one pass, nothing read back) and ``manifest.json`` is written last. Runs
sharded with FSDP2 write the weights and optimizer as ``sharded/`` instead of ``model.safetensors``; see
``sharded_checkpoint``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from syllabus.checkpoints.folder import (MANIFEST, MODEL_FILE, STATE_FILE, CheckpointError, HashingWriter,  # noqa: F401
                                         describe_file, latest_valid_checkpoint, list_checkpoints,
                                         resolve_checkpoint, verify_checkpoint)
from syllabus.checkpoints.load import load_model, load_model_state, load_trainer_state, load_weights  # noqa: F401
from syllabus.train import faults


def save_checkpoint(root: str | Path, step: int, model_state: dict[str, torch.Tensor], trainer_state: dict,
                    json_files: dict[str, dict], text_files: dict[str, str] | None = None) -> Path:
    """Write ``root/step_<step>`` atomically and return it.

    ``json_files`` are written as ``name`` → JSON; ``text_files`` as name → text (e.g. the tokenizer). Each file
    is hashed as it is written; the manifest comes last, then the folder is renamed into place. On any error
    the half-written folder is removed and the error re-raised; older checkpoints are untouched.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        entries = {}
        weights = safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in model_state.items()},
                                    metadata={"format": "pt", "step": str(step)})
        entries[MODEL_FILE] = write_hashed(tmp / MODEL_FILE, *canonical_safetensors(weights))
        del weights
        faults.check_save(step)
        faults.slow_save(step)
        with HashingWriter(tmp / STATE_FILE) as out:
            torch.save(trainer_state, out)
            entries[STATE_FILE] = out.close()
        for name, payload in json_files.items():
            entries[name] = write_hashed(tmp / name, json.dumps(payload, indent=2, sort_keys=True).encode())
        for name, text in (text_files or {}).items():
            entries[name] = write_hashed(tmp / name, text.encode())
        manifest = {"step": step, "files": dict(sorted(entries.items()))}
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind; older checkpoints are untouched
        raise
    _replace_dir(tmp, final)
    _fsync_dir(root)
    return final


def write_hashed(path: Path, *pieces: bytes) -> dict:
    """Write ``pieces`` one after the other to ``path`` (fsynced) and return its manifest entry, hashed on the
    way out."""
    with HashingWriter(path) as out:
        for data in pieces:
            out.write(data)
        return out.close()


def canonical_safetensors(data: bytes) -> tuple[bytes, memoryview]:
    """A safetensors file whose bytes are a function of its contents: ``(header, tensor bytes)``.

    ``safetensors`` writes the ``__metadata__`` map from a Rust ``HashMap``, so its keys (``format``, ``step``)
    come out in a different order from one call to the next, and equal tensors gave files of different
    hashes. The header (8-byte little-endian length, then JSON) is rewritten with those keys sorted and padded
    with spaces to a multiple of 8 bytes, as the format allows; tensor offsets are relative to the data that
    follows, so they do not move. The tensor bytes are returned as a view (no copy)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(bytes(data[8:8 + size]))
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, memoryview(data)[8 + size:]


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict in Hugging Face names; a tied ``lm_head`` is left out (it is the embedding)."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return state


def prune_checkpoints(root: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step folders (and leftovers of interrupted saves)."""
    root = Path(root)
    for stale in root.glob(".tmp-step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    for old in list_checkpoints(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def alias_checkpoint(checkpoint: Path, name: str) -> Path:
    """Make ``root/<name>`` (e.g. ``best``, ``final``) a copy of ``checkpoint`` by hard links (no extra disk)."""
    tmp = checkpoint.parent / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp, copy_function=_link_or_copy)
    target = checkpoint.parent / name
    _replace_dir(tmp, target)
    return target


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
