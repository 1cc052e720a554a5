"""Where documents come from: file resolution, lazy readers, and the skip ledger.

A *source spec* is a file, a folder (every readable file below it), a glob, or
``hf:owner/name[:config]`` (Hugging Face ``datasets`` streaming, imported only when used).

Formats:
- JSONL (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``; also ``.json``/``.ndjson``): one JSON object per
  line, text in ``text_field`` (default ``"text"``);
- Parquet (``.parquet``): the ``text_field`` column;
- plain text (``.txt``, ``.md``, ``.tex``, ``.py`` and any other file): **one document per file**
  (a book or an article stays whole; split big files yourself if you want smaller documents).

Malformed records never stop a run: they are skipped and counted by reason in a ``Counter``
(``invalid_json``, ``not_an_object``, ``missing_field``, ``wrong_type``, ``empty``,
``invalid_utf8``, ``too_long``, ``unreadable``).

Files are read in *units* so that any unit can be re-read on its own (the shuffle buffer and the
resume point of a stream): a byte range of an uncompressed JSONL file (lines that *start* in the
range), a row group of a Parquet file, or a whole file otherwise.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from syllabus.config.errors import ConfigError

log = logging.getLogger("syllabus")

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst")
MAX_DOC_BYTES = 16 << 20  # a single record (line or file) larger than this is skipped as too_long
UNIT_BYTES = 4 << 20  # uncompressed JSONL is re-readable in byte ranges of this size
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation", "dev")}
IGNORED_NAMES = {"header.json", "SOURCES.md", "README.md", "LICENSE"}


@dataclass(frozen=True)
class Unit:
    """A re-readable piece of a source: ``path`` and a range ``[start, stop)`` in its position space
    (bytes for uncompressed JSONL, row groups for Parquet, ``(0, 1)`` for a whole file)."""

    path: str
    start: int
    stop: int


def is_hub_spec(spec: str) -> bool:
    return str(spec).startswith("hf:")


def resolve_files(spec: str | Path) -> list[Path]:
    """Expand a file, folder or glob into a sorted list of files; a missing one is a ConfigError."""
    text = str(spec)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise ConfigError(f"data source: no file matches {text}")
        return files
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            and p.name not in IGNORED_NAMES
        )
        if not files:
            raise ConfigError(f"data source: folder {path} holds no files")
        return files
    raise ConfigError(f"data source: file not found: {path}")


def split_of_name(path: Path) -> str | None:
    """``train.jsonl``/``train-0001.jsonl`` -> "train", ``val.jsonl``/``validation.jsonl`` -> "val"."""
    stem = path.name.split(".")[0].lower()
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if stem == name or stem.startswith(name + "-") or stem.startswith(name + "_"):
                return split
    return None


def files_for_split(files: list[Path], split: str) -> tuple[list[Path], bool]:
    """Pick the files of ``split``. Returns ``(files, by_name)``: when some files are named for a
    split the split is by file name, otherwise every file is returned and documents are split by
    content hash (:func:`split_of_text`)."""
    named = {f: split_of_name(f) for f in files}
    if not any(named.values()):
        return files, False
    chosen = [f for f, s in named.items() if s == split]
    if not chosen:
        raise ConfigError(f"data source: no {split} file among {', '.join(str(f) for f in files[:5])}")
    return chosen, True


def split_of_text(text: str, val_fraction: float) -> str:
    """Deterministic held-out split by content hash: the same text always lands on the same side."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "little") / 2**64 < val_fraction else "train"


def is_jsonl(path: str | Path) -> bool:
    return str(path).lower().endswith(JSONL_SUFFIXES)


def plan_units(files: list[Path], unit_bytes: int = UNIT_BYTES) -> list[Unit]:
    """Cut files into independently re-readable units (see the module docstring)."""
    units: list[Unit] = []
    for f in files:
        name = str(f).lower()
        if is_jsonl(f) and not name.endswith((".gz", ".zst")):
            size = max(f.stat().st_size, 1)
            units += [Unit(str(f), s, min(s + unit_bytes, size)) for s in range(0, size, unit_bytes)]
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq

            groups = pq.ParquetFile(f).metadata.num_row_groups
            units += [Unit(str(f), g, g + 1) for g in range(groups)]
        else:
            units.append(Unit(str(f), 0, 1))
    return units


def read_unit(unit: Unit, skips: Counter, *, text_field: str = "text",
              max_doc_bytes: int = MAX_DOC_BYTES) -> Iterator[str]:
    """Yield the valid documents of one unit, counting the others in ``skips``.

    A file that cannot be read any more (deleted or made unreadable while a run streams it) is skipped and
    counted as ``unreadable`` with a warning naming it; a run is not stopped by it."""
    path = unit.path
    try:
        if is_jsonl(path):
            yield from _read_jsonl(unit, skips, text_field, max_doc_bytes)
        elif path.lower().endswith(".parquet"):
            yield from _read_parquet(unit, skips, text_field, max_doc_bytes)
        else:
            yield from _read_text_file(path, skips, max_doc_bytes)
    except OSError as err:
        skips["unreadable"] += 1
        log.warning("data source: skipping %s, it cannot be read (%s)", path, err.strerror or err)


def read_documents(spec: str | Path, skips: Counter | None = None, *, text_field: str = "text",
                   max_doc_bytes: int = MAX_DOC_BYTES) -> Iterator[str]:
    """All valid documents of a source spec, in file order (lazy)."""
    skips = Counter() if skips is None else skips
    if is_hub_spec(str(spec)):
        yield from read_hub(str(spec), skips, text_field=text_field)
        return
    for unit in plan_units(resolve_files(spec)):
        yield from read_unit(unit, skips, text_field=text_field, max_doc_bytes=max_doc_bytes)


def _open_binary(path: str):
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.open(path, "rb")
    if lower.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _read_jsonl(unit: Unit, skips: Counter, text_field: str, max_doc_bytes: int) -> Iterator[str]:
    compressed = unit.path.lower().endswith((".gz", ".zst"))
    with _open_binary(unit.path) as f:
        if not compressed and unit.start > 0:
            f.seek(unit.start - 1)
            if f.read(1) != b"\n":
                _skip_line(f)  # the line started in the previous unit
        while compressed or f.tell() < unit.stop:
            line = f.readline(max_doc_bytes + 1)
            if not line:
                return
            if len(line) > max_doc_bytes and not line.endswith(b"\n"):
                _skip_line(f)
                skips["too_long"] += 1
                continue
            if not line.strip():
                continue
            text = _text_of_line(line, skips, text_field)
            if text is not None:
                yield text


def _skip_line(f) -> None:
    while True:
        chunk = f.readline(1 << 20)
        if not chunk or chunk.endswith(b"\n"):
            return


def _text_of_line(line: bytes, skips: Counter, text_field: str) -> str | None:
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        skips["invalid_utf8"] += 1
        return None
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError:
        skips["invalid_json"] += 1
        return None
    if not isinstance(record, dict):
        skips["not_an_object"] += 1
        return None
    return _checked_text(record.get(text_field, _MISSING), skips)


_MISSING = object()


def _checked_text(value, skips: Counter) -> str | None:
    if value is _MISSING:
        skips["missing_field"] += 1
    elif not isinstance(value, str):
        skips["wrong_type"] += 1
    elif not value.strip():
        skips["empty"] += 1
    else:
        return value
    return None


def _read_parquet(unit: Unit, skips: Counter, text_field: str, max_doc_bytes: int) -> Iterator[str]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(unit.path)
    if text_field not in pf.schema_arrow.names:
        raise ConfigError(f"data source: {unit.path} has no column {text_field!r} (has {pf.schema_arrow.names})")
    for group in range(unit.start, unit.stop):
        for value in pf.read_row_group(group, columns=[text_field]).column(0).to_pylist():
            text = _checked_text(value, skips)
            if text is None:
                continue
            if len(text) > max_doc_bytes:
                skips["too_long"] += 1
                continue
            yield text


def _read_text_file(path: str, skips: Counter, max_doc_bytes: int) -> Iterator[str]:
    p = Path(path)
    if p.stat().st_size > max_doc_bytes:
        skips["too_long"] += 1
        return
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        skips["invalid_utf8"] += 1
        return
    if "\x00" in text:  # a binary file in a folder of text
        skips["binary"] += 1
        return
    if not text.strip():
        skips["empty"] += 1
        return
    yield text


def read_hub(spec: str, skips: Counter, *, text_field: str = "text", split: str = "train") -> Iterator[str]:
    """``hf:owner/name[:config]`` streamed with ``datasets`` (network needed; imported lazily).
    ``hf:json:/path/file.jsonl`` streams a local file through the same code path."""
    try:
        import datasets
    except ImportError as err:
        raise ConfigError(f"data source {spec}: the 'datasets' package is needed (pip install datasets)") from err
    name, _, config = spec[3:].partition(":")
    if name in ("json", "parquet", "text") and config:
        stream = datasets.load_dataset(name, data_files=config, split="train", streaming=True)
    else:
        hub_split = "validation" if split == "val" else split
        stream = datasets.load_dataset(name, config or None, split=hub_split, streaming=True)
    for record in stream:
        text = _checked_text(record.get(text_field, _MISSING), skips)
        if text is not None:
            yield text
