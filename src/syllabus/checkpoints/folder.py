"""A checkpoint folder's layout and its manifest: which folders exist, which are whole, which is the newest.

A checkpoint folder ``step_<N>/`` holds ``model.safetensors`` (or ``sharded/`` under FSDP2),
``trainer_state.pt``, ``model_config.json``, ``run_config.json``, ``tokenizer.json`` and, written last,
``manifest.json``: ``{"step": N, "files": {relative path: {"size": bytes, "xxh3_128": hex}}}``. A folder whose
manifest is missing or does not match its files is torn: loaders skip it with a warning and take the previous
valid one. Checksums are taken while the files are written (``HashingWriter``), so a save reads nothing back.
The checksum is XXH3-128 (about ten times sha256's speed here; it guards against torn and damaged files, not
against a forger: what a checkpoint may run on load is limited by ``weights_only`` instead); manifests written
with ``sha256`` by earlier versions still verify. ``verify_checkpoint`` checks sizes first (cheap, catches
every torn save), then hashes the files on several threads at once (both hashes release the GIL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import xxhash

log = logging.getLogger("syllabus")

MANIFEST = "manifest.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
SHARDED_DIR = "sharded"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_CHUNK = 1 << 24  # bytes read per hash update
HASH = "xxh3_128"  # the manifest key new checkpoints use
_HASHES = {"xxh3_128": xxhash.xxh3_128, "sha256": hashlib.sha256}  # every key a manifest may hold


class CheckpointError(RuntimeError):
    """No usable checkpoint where one was asked for."""


class HashingWriter:
    """A binary file opened for writing that keeps the checksum (``HASH``) and size of what passed through it.

    ``torch.save`` and plain ``write`` calls accept it like a file. Closing it flushes and ``fsync``s."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self._digest = _HASHES[HASH]()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._digest.update(view)
        self.size += view.nbytes
        return self._file.write(view)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> dict:
        """Flush, fsync and close; returns the manifest entry ``{"size", HASH}``."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return {"size": self.size, HASH: self._digest.hexdigest()}

    def __enter__(self) -> "HashingWriter":
        return self

    def __exit__(self, *exc) -> None:
        if not self._file.closed:
            self._file.close()


def describe_file(file: Path) -> dict:
    """The manifest entry of a file already on disk (read once): ``{"size", HASH}``."""
    return {"size": file.stat().st_size, HASH: hash_of(file, HASH)}


def hash_of(file: Path, algorithm: str) -> str:
    """Hex checksum of ``file`` with ``algorithm`` (a key of a manifest entry: ``xxh3_128`` or ``sha256``)."""
    digest = _HASHES[algorithm]()
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checkpoint(path: str | Path) -> str | None:
    """None when the checkpoint is whole; otherwise what is wrong with it (one line).

    Every file listed in the manifest must exist with its size (checked for all files first) and its checksum
    (files hashed in parallel threads). Reads every listed byte once; changes nothing."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        expected = manifest["files"]
        algorithms = {name: next(key for key in _HASHES if key in want) for name, want in expected.items()}
    except FileNotFoundError:
        return "manifest.json is missing (the save did not finish)"
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return "manifest.json is unreadable"
    for name, want in expected.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != want["size"]:
            return f"{name} has {file.stat().st_size} bytes, the manifest says {want['size']}"
    names = sorted(expected, key=lambda n: -expected[n]["size"])  # the largest first: it sets the wall time
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1) or 1) as pool:
        digests = dict(zip(names, pool.map(lambda n: hash_of(path / n, algorithms[n]), names)))
    for name in sorted(expected):
        if digests[name] != expected[name][algorithms[name]]:
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
    """A checkpoint folder itself, or the newest valid one in a checkpoints folder or a run folder.

    Raises ``CheckpointError`` naming the path when none is usable."""
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
