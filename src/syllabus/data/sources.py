"""Where documents come from: file resolution, lazy readers, and the skip ledger.

A *source spec* is a file, a folder (every readable file below it), a glob, or
``hf:owner/name[:config]`` (Hugging Face ``datasets`` streaming, imported only when used).

Formats:
- JSONL (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``; also ``.json``/``.ndjson``): one JSON object per
  line (a UTF-8 byte-order mark and CRLF line ends are allowed), rendered to text by the source's
  :class:`~syllabus.data.records.RecordRenderer` (default: the ``text`` field);
- Parquet (``.parquet``): one record per row, rendered the same way;
- plain text (``.txt``, ``.md``, ``.tex``, ``.py`` and any other file): **one document per file**
  (a book or an article stays whole; split big files yourself if you want smaller documents).

Malformed records never stop a run: they are skipped and counted by reason in a ``Counter``
(``invalid_json``, ``not_an_object``, ``missing_field``, ``missing_field:<name>``, ``wrong_type``,
``empty``, ``language``, ``invalid_utf8``, ``too_long``, ``unreadable``, ``unknown_role:<role>``,
``no_assistant_turn``); :func:`explain_skips` turns
the counts into one line naming the fields the records have and the option that would read them.

Files are read in *units* so that any unit can be re-read on its own (the shuffle buffer and the
resume point of a stream): a byte range of an uncompressed JSONL file (lines that *start* in the
range), a row group of a Parquet file, or a whole file otherwise.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data.hub import read_hub
from syllabus.data.records import RecordRenderer, suggestion_for

log = logging.getLogger("syllabus")

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst")
MAX_DOC_BYTES = 16 << 20  # a single record (line or file) larger than this is skipped as too_long
UNIT_BYTES = 4 << 20  # uncompressed JSONL is re-readable in byte ranges of this size
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation", "dev"), "test": ("test",)}
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
    if (path / "header.json").is_file() or (path / "train" / "header.json").is_file():
        raise ConfigError(f"data source: {path} holds prepared token shards, which are read as shards, never as "
                          f"text (a tokenizer is not trained on them: use the one they were prepared with)")
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


DEMO_CORPUS = "demo-corpus"  # the demo plans' folder (plans/demo.yaml), built by `syllabus corpus demo`


def missing_sources(named: dict[str, str]) -> list[str]:
    """One line per source of ``named`` (``field`` -> path) whose files cannot be found, empty when all are
    there; checked before anything trains, warns or writes. Hub specs and prepared shard folders count as
    there. A relative path says it is relative to the current folder; paths under the demo corpus are one
    line naming the command that builds it (``syllabus corpus demo <folder>``)."""
    missing: dict[str, str] = {}
    for field, path in named.items():
        text = str(path)
        if is_hub_spec(text) or (Path(text) / "header.json").is_file() or (Path(text) / "train" / "header.json").is_file():
            continue
        try:
            resolve_files(text)
        except ConfigError as err:
            missing[field] = str(err).removeprefix("data source: ")
    demo = {f: p for f, p in missing.items() if DEMO_CORPUS in str(named[f])}
    lines = []
    if demo:
        root = str(named[next(iter(demo))])
        root = root[: root.index(DEMO_CORPUS) + len(DEMO_CORPUS)]
        lines.append(f"{', '.join(demo)}: the demo corpus is not there ({', '.join(demo.values())}"
                     f"{_relative_note(root)}); build it first: syllabus corpus demo {root}")
    for field, problem in missing.items():
        if field not in demo:
            lines.append(f"{field}: {problem}{_relative_note(str(named[field]))}")
    return lines


def _relative_note(path: str) -> str:
    return "" if Path(path).is_absolute() else f", relative to the current folder {Path.cwd()}"


def split_of_name(path: Path) -> str | None:
    """``train.jsonl``/``train-0001.jsonl`` -> "train", ``val.jsonl``/``validation.jsonl`` -> "val"."""
    stem = path.name.split(".")[0].lower()
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if stem == name or stem.startswith(name + "-") or stem.startswith(name + "_"):
                return split
    return None


def split_by_names(files: list[Path]) -> dict[Path, str] | None:
    """File -> split when the file names decide, ``None`` when documents are split by content hash.

    Names decide when a ``val`` (or ``validation``/``dev``) file exists, or else a ``test`` file, which
    then serves as the held-out split (GSM8K ships ``train.jsonl`` + ``test.jsonl``). A lone ``train``
    file (or only unnamed files) is split by content hash, as ``prepare`` does. Unnamed files next to
    named ones are training data; ``test`` files next to ``val`` files are used by neither split."""
    named = {f: split_of_name(f) for f in files}
    present = set(named.values())
    if "val" in present:
        return {f: s or "train" for f, s in named.items()}
    if "test" in present:
        return {f: "val" if s == "test" else (s or "train") for f, s in named.items()}
    return None


def held_out_rule(path: str) -> str:
    """Where the held-out rows of the source at ``path`` come from, in words (for the plan table)."""
    if is_hub_spec(path):
        return "the dataset's validation (else test) split, else a hash split"
    if (Path(path) / "header.json").is_file() or (Path(path) / "val" / "header.json").is_file():
        return "its prepared val split"
    try:
        named = {split_of_name(f) for f in resolve_files(path)}
    except ConfigError:
        return "?"
    return "the val file" if "val" in named else "the test file" if "test" in named else "a content-hash split"


def files_for_split(files: list[Path], split: str) -> tuple[list[Path], bool]:
    """Pick the files of ``split``. Returns ``(files, by_name)``: see :func:`split_by_names`; without
    names every file is returned and documents are split by content hash (:func:`split_of_text`)."""
    by_name = split_by_names(files)
    if by_name is None:
        return files, False
    chosen = [f for f, s in by_name.items() if s == split]
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


def read_unit(unit: Unit, skips: Counter, *, text_field: str = "text", renderer: RecordRenderer | None = None,
              max_doc_bytes: int = MAX_DOC_BYTES) -> Iterator[str]:
    """Yield the documents (rendered records, see :mod:`syllabus.data.records`) of one unit, counting the
    skipped ones in ``skips``. ``renderer`` defaults to the plain ``text_field`` reader.

    A file that cannot be read any more (deleted or made unreadable while a run streams it) is skipped and
    counted as ``unreadable`` with a warning naming it; a run is not stopped by it."""
    renderer = renderer or plain_renderer(text_field)
    path = unit.path
    try:
        if is_jsonl(path):
            yield from _read_jsonl(unit, skips, renderer, max_doc_bytes)
        elif path.lower().endswith(".parquet"):
            yield from _read_parquet(unit, skips, renderer, max_doc_bytes)
        else:
            yield from _read_text_file(path, skips, renderer, max_doc_bytes)
    except OSError as err:
        skips["unreadable"] += 1
        log.warning("data source: skipping %s, it cannot be read (%s)", path, err.strerror or err)


def plain_renderer(text_field: str = "text") -> RecordRenderer:
    return RecordRenderer(SourceSpec(path="-", text_field=text_field))


def read_documents(spec: str | Path, skips: Counter | None = None, *, text_field: str = "text",
                   renderer: RecordRenderer | None = None, max_doc_bytes: int = MAX_DOC_BYTES) -> Iterator[str]:
    """All valid documents of a source spec, in file order (lazy)."""
    skips = Counter() if skips is None else skips
    renderer = renderer or plain_renderer(text_field)
    if is_hub_spec(str(spec)):
        yield from read_hub(str(spec), skips, renderer=renderer)
        return
    for unit in plan_units(resolve_files(spec)):
        yield from read_unit(unit, skips, renderer=renderer, max_doc_bytes=max_doc_bytes)


def _open_binary(path: str):
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.open(path, "rb")
    if lower.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _read_jsonl(unit: Unit, skips: Counter, renderer: RecordRenderer, max_doc_bytes: int) -> Iterator[str]:
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
            record = _record_of_line(line, skips)
            if record is not None:
                text = renderer.render(record, skips)
                if text is not None:
                    yield text


def _skip_line(f) -> None:
    while True:
        chunk = f.readline(1 << 20)
        if not chunk or chunk.endswith(b"\n"):
            return


def _record_of_line(line: bytes, skips: Counter) -> dict | None:
    """The JSON object of one line (a UTF-8 byte-order mark and CRLF line ends are allowed)."""
    try:
        decoded = line.decode("utf-8").removeprefix("\ufeff")
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
    return record


def first_records(files: list[Path], limit: int = 50) -> list[dict]:
    """Up to ``limit`` records from the first JSONL/Parquet files (to say what fields a source has)."""
    records: list[dict] = []
    for f in files:
        if len(records) >= limit:
            break
        try:
            if is_jsonl(f):
                with _open_binary(str(f)) as stream:
                    for line in itertools.islice(stream, limit):
                        record = _record_of_line(line, Counter()) if line.strip() else None
                        if record is not None:
                            records.append(record)
            elif str(f).lower().endswith(".parquet"):
                import pyarrow.parquet as pq

                records += pq.ParquetFile(f).read_row_group(0).slice(0, limit).to_pylist()
        except (OSError, ValueError):
            continue
    return records[:limit]


def explain_skips(name: str, skips: Counter | dict, spec: SourceSpec, files: list[Path] | None, kept: int,
                  records: list[dict] | None = None, problem: str | None = None) -> str:
    """One line: the source, its skip counts by reason, the fields its records have (from ``records`` or the
    first records of ``files``) and the option that would read them (e.g. ``records have fields: messages;
    set `format: chat```)."""
    counts = ", ".join(f"{k}={v}" for k, v in sorted(dict(skips).items())) or "none"
    line = f"data source {name}: {problem or f'{kept} documents kept'}; skipped by reason: {counts}"
    records = first_records(files or []) if records is None else records
    fields = sorted({k for r in records for k in r})
    if fields:
        line += f"; records have fields: {', '.join(fields)}"
    hint = suggestion_for(fields, spec, skips)
    if hint:
        line += f"; {hint}"
    return line


def _read_parquet(unit: Unit, skips: Counter, renderer: RecordRenderer, max_doc_bytes: int) -> Iterator[str]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(unit.path)
    spec = renderer.spec
    if spec.format == "text" and spec.template is None and spec.text_field not in pf.schema_arrow.names:
        raise ConfigError(f"data source: {unit.path} has no column {spec.text_field!r} (has {pf.schema_arrow.names})"
                          + (f"; {suggestion_for(pf.schema_arrow.names, spec)}" if suggestion_for(
                              pf.schema_arrow.names, spec) else ""))
    for group in range(unit.start, unit.stop):
        for record in pf.read_row_group(group).to_pylist():
            text = renderer.render(record, skips)
            if text is None:
                continue
            if len(text) > max_doc_bytes:
                skips["too_long"] += 1
                continue
            yield text


def _read_text_file(path: str, skips: Counter, renderer: RecordRenderer, max_doc_bytes: int) -> Iterator[str]:
    p = Path(path)
    if p.stat().st_size > max_doc_bytes:
        skips["too_long"] += 1
        return
    data = p.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    except UnicodeDecodeError:
        skips["invalid_utf8"] += 1
        return
    if "\x00" in text:  # a binary file in a folder of text
        skips["binary"] += 1
        return
    if not text.strip():
        skips["empty"] += 1
        return
    text = renderer.render_file_text(text, path)
    if text is None:
        skips["language"] += 1
        return
    yield text
