"""The parts of a ``prepare`` input: pieces of work that are a pure function of the input, never of how many
workers, tasks or machines prepare it.

A :class:`Part` is a list of :class:`Piece` s read in order:

- an uncompressed JSONL file is cut into byte ranges of ``part_bytes`` (a range holds the lines that *start*
  in it, so every line belongs to exactly one part);
- a Parquet file into runs of whole row groups of about ``part_bytes`` (by the row groups' uncompressed size);
- compressed JSONL (``.gz``, ``.zst``) is one part per file (it cannot be entered in the middle);
- other files (one document each) are grouped in runs of about ``part_bytes``, in file order;
- a hub dataset (``hf:...``) gives one part per shard of its streaming dataset (its data files), for its
  train split (split by content hash, as before) and its held-out split.

Parts are numbered in input order; concatenating their outputs in that order gives the same documents, in the
same order, as reading the input from start to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syllabus.data.sources import is_hub_spec, is_jsonl, resolve_files, split_by_names

PART_BYTES = 64_000_000  # a part of a large file holds about this many bytes of input (`--part-mb 64`)


@dataclass(frozen=True)
class Piece:
    """``path`` read from ``start`` to ``stop`` (bytes of an uncompressed JSONL file, row groups of a Parquet
    file, ``(0, 1)`` for a whole file, ``(shard, num_shards)`` of a hub split). ``split`` is the split its
    file name decides (``train``/``val``), or ``None`` when documents are split by content hash."""

    path: str
    start: int
    stop: int
    split: str | None
    bytes: int


@dataclass(frozen=True)
class Part:
    """Part number ``index`` (0-based, in input order) of the input ``source``."""

    index: int
    source: str
    pieces: tuple[Piece, ...]

    @property
    def name(self) -> str:
        return part_name(self.index)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.pieces)


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def plan_parts(inputs: list[str], part_bytes: int = PART_BYTES) -> list[Part]:
    """Cut ``inputs`` (files, folders, globs, ``hf:`` specs) into parts (see the module docstring). Reads
    only file sizes, Parquet metadata and a hub dataset's list of shards. ``test`` files next to ``val``
    files belong to neither split and are left out. Raises ``ConfigError`` for a missing input."""
    parts: list[Part] = []
    for source in inputs:
        groups = _hub_pieces(source) if is_hub_spec(source) else _file_pieces(source, part_bytes)
        for pieces in groups:
            parts.append(Part(len(parts), source, tuple(pieces)))
    return parts


def _file_pieces(source: str, part_bytes: int) -> list[list[Piece]]:
    files = resolve_files(source)
    by_name = split_by_names(files)
    groups: list[list[Piece]] = []
    loose: list[Piece] = []  # whole files waiting to fill a part

    def flush():
        if loose:
            groups.append(list(loose))
            loose.clear()

    for f in files:
        split = by_name[f] if by_name is not None else None
        if split == "test":
            continue
        size = f.stat().st_size
        lower = str(f).lower()
        if is_jsonl(f) and not lower.endswith((".gz", ".zst")):
            flush()
            groups += [[Piece(str(f), s, min(s + part_bytes, size), split, min(part_bytes, size - s))]
                       for s in range(0, max(size, 1), part_bytes)]
        elif lower.endswith(".parquet"):
            flush()
            groups += _parquet_groups(f, split, part_bytes)
        elif is_jsonl(f):
            flush()
            groups.append([Piece(str(f), 0, 1, split, size)])
        else:
            if loose and sum(p.bytes for p in loose) + size > part_bytes:
                flush()
            loose.append(Piece(str(f), 0, 1, split, size))
    flush()
    return groups


def _parquet_groups(path: Path, split: str | None, part_bytes: int) -> list[list[Piece]]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    groups, start, size = [], 0, 0
    for g in range(meta.num_row_groups):
        size += meta.row_group(g).total_byte_size
        if size >= part_bytes or g == meta.num_row_groups - 1:
            groups.append([Piece(str(path), start, g + 1, split, size)])
            start, size = g + 1, 0
    return groups or [[Piece(str(path), 0, 0, split, 0)]]


def _hub_pieces(source: str) -> list[list[Piece]]:
    from syllabus.data.hub import hub_stream

    groups = []
    for split in ("train", "val"):
        stream = hub_stream(source, split)
        if stream is None:
            if split == "train":
                from syllabus.config.errors import ConfigError

                raise ConfigError(f"data source {source}: no train split")
            continue
        shards = max(int(getattr(stream, "num_shards", 1) or 1), 1)
        groups += [[Piece(source, i, shards, None if split == "train" else split, 0)] for i in range(shards)]
    return groups
