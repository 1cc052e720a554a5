"""Checkpoints: one folder per save, written aside and renamed into place, checked by a manifest.

A checkpoint folder ``step_<N>/`` holds ``model.safetensors`` (Hugging Face names), ``trainer_state.pt``
(optimizer, counters, RNG, data position; read back with ``weights_only=True``), ``model_config.json``,
``tokenizer.json``, ``run_config.json`` and last ``manifest.json`` with each file's size and sha256. A
folder whose manifest is missing or does not match its files is torn: loaders skip it with a warning and
take the previous valid one. Nothing here unpickles arbitrary objects. Runs sharded with FSDP2 write the
weights and optimizer as ``sharded/`` (``torch.distributed.checkpoint``) instead of ``model.safetensors``;
see ``sharded_checkpoint``. ``load_model`` reads both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from syllabus.train import faults

log = logging.getLogger("syllabus")

MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was asked for."""


def save_checkpoint(root: str | Path, step: int, model_state: dict[str, torch.Tensor], trainer_state: dict,
                    json_files: dict[str, dict], text_files: dict[str, str] | None = None) -> Path:
    """Write ``root/step_<step>`` atomically and return it.

    ``json_files`` are written as ``name`` → JSON; ``text_files`` as name → text (e.g. the tokenizer).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / MODEL_FILE),
                  metadata={"format": "pt", "step": str(step)})
        faults.check_save(step)
        torch.save(trainer_state, tmp / STATE_FILE)
        for name, payload in json_files.items():
            (tmp / name).write_text(json.dumps(payload, indent=2, sort_keys=True))
        for name, text in (text_files or {}).items():
            (tmp / name).write_text(text)
        files = sorted(p.name for p in tmp.iterdir())
        for name in files:
            _fsync_file(tmp / name)
        manifest = {"step": step, "files": {name: _describe(tmp / name) for name in files}}
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2))
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind; older checkpoints are untouched
        raise
    _replace_dir(tmp, final)
    _fsync_dir(root)
    return final


def verify_checkpoint(path: str | Path) -> str | None:
    """None when the checkpoint is whole; otherwise what is wrong with it."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        expected = manifest["files"]
    except FileNotFoundError:
        return "manifest.json is missing (the save did not finish)"
    except (ValueError, KeyError, TypeError):
        return "manifest.json is unreadable"
    for name, want in expected.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != want["size"]:
            return f"{name} has {file.stat().st_size} bytes, the manifest says {want['size']}"
        if _sha256(file) != want["sha256"]:
            return f"{name} does not match its checksum"
    return None


def list_checkpoints(root: str | Path) -> list[Path]:
    """``step_<N>`` folders under ``root``, newest (highest N) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def latest_valid_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint under ``root`` that passes its manifest; torn ones are skipped with a warning."""
    for path in list_checkpoints(root):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log.warning("checkpoint %s is not usable (%s); trying the previous one", path, problem)
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder itself, or the newest valid one in a checkpoints folder or a run folder."""
    path = Path(path)
    if (path / MANIFEST).exists() or (path / MODEL_FILE).exists():
        problem = verify_checkpoint(path)
        if problem:
            raise CheckpointError(f"checkpoint {path} is not usable: {problem}")
        return path
    for root in (path, path / "checkpoints"):
        found = latest_valid_checkpoint(root)
        if found is not None:
            return found
    raise CheckpointError(f"no valid checkpoint found at {path}")


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Full weights in Hugging Face names, from either format (single file, or sharded by FSDP2 via DCP)."""
    from syllabus.train import sharded_checkpoint

    if sharded_checkpoint.is_sharded(path):
        return sharded_checkpoint.load_full_model_state(path)
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
    """(model, tokenizer) from a checkpoint, a checkpoints folder or a run folder."""
    from syllabus.config.model import ModelConfig
    from syllabus.data.tokenizer import load_tokenizer
    from syllabus.model import Transformer

    path = resolve_checkpoint(path)
    config = ModelConfig.model_validate_json((path / "model_config.json").read_text())
    model = Transformer(config)
    load_weights(model, load_model_state(path))
    return model.to(device).eval(), load_tokenizer(path / "tokenizer.json")


def model_state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict in Hugging Face names; a tied ``lm_head`` is left out (it is the embedding)."""
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return state


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        raise CheckpointError(f"weights do not fit the model: missing {sorted(set(missing) - allowed_missing)}, "
                              f"unexpected {sorted(unexpected)}")


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


def _describe(file: Path) -> dict:
    return {"size": file.stat().st_size, "sha256": _sha256(file)}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


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
