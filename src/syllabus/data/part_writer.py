"""One part of a ``prepare`` input from reading to writing: ``part -> files + done marker``.

:func:`prepare_part` reads the part's pieces, renders, cleans, deduplicates (inside the part), splits,
tokenizes and writes, under ``OUT/parts/``::

    part-00042/train-tokens.bin   the part's train documents, each followed by EOS (uint16 or uint32)
    part-00042/train-docs.npy     int64 offsets: document i is tokens[docs[i]:docs[i+1]]
    part-00042/train-hashes.npy   uint8 [docs, 16]: the content hash of each document (the cross-part dedup)
    part-00042/val-...            the same for the held-out documents
    part-00042/done.json          written last: options + tokenizer fingerprint, counts

The files are written in ``part-00042.tmp-HOST-PID/``, which is renamed when complete; ``done.json`` is written
(atomically) after the rename, so a part is either done with all its files or redone. Nothing but the small
counts dict goes back to the caller. Memory: the documents of one tokenization batch plus the dedup hashes of
the part (16 bytes per kept document; MinHash signatures too with near dedup) -- bounded by ``part_bytes``,
independent of the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syllabus.config.source import SourceSpec
from syllabus.data.cleaning import CleaningOptions, clean_latex, language_problem, quality_problem
from syllabus.data.dedup import NearDedup
from syllabus.data.hub import hub_stream
from syllabus.data.parts import Part, Piece
from syllabus.data.records import RecordRenderer
import syllabus.data.sources as sources
from syllabus.data.sources import Unit, is_hub_spec, is_jsonl, split_of_text

BATCH_DOCS = 256  # documents tokenized per encode_batch call
SPLITS = ("train", "val")
DONE = "done.json"


@dataclass(frozen=True)
class PartJob:
    """Everything a worker needs besides the part (picklable, sent once per worker)."""

    out: str
    tokenizer_json: str
    eos: int
    dtype: str
    spec: dict  # SourceSpec fields: text_field and the record options
    cleaning: CleaningOptions
    val_fraction: float
    max_doc_bytes: int
    fingerprint: str  # of the options and the tokenizer; written into done.json
    options: dict  # what the fingerprint covers, in words (a refusal names what changed)


def content_hash(text: str) -> bytes:
    """16-byte BLAKE2b of the text without surrounding whitespace (:class:`~syllabus.data.dedup.ExactDedup`'s)."""
    return hashlib.blake2b(text.strip().encode("utf-8", "surrogatepass"), digest_size=16).digest()


def iter_piece(piece: Piece, skips: Counter, renderer: RecordRenderer, max_doc_bytes: int,
               removed: Counter, code_languages: list[str]) -> Iterator[str]:
    """The rendered documents of one piece (hub shard, byte range, row groups or whole file)."""
    if is_hub_spec(piece.path):
        stream = hub_stream(piece.path, piece.split or "train")
        if piece.stop > 1:
            stream = stream.shard(num_shards=piece.stop, index=piece.start, contiguous=True)
        for record in stream:
            text = renderer.render(record, skips)
            if text is not None:
                yield text
        return
    if not is_jsonl(piece.path) and not piece.path.lower().endswith(".parquet"):
        reason = language_problem(piece.path, code_languages)
        if reason:
            removed[reason] += 1
            return
    yield from sources.read_unit(Unit(piece.path, piece.start, piece.stop), skips, renderer=renderer,
                                 max_doc_bytes=max_doc_bytes)


def iter_part_documents(part: Part, job: PartJob, skips: Counter, removed: Counter,
                        kept: list[int]) -> Iterator[tuple[str, str, bytes]]:
    """``(split, text, hash)`` of every document of ``part`` that survives rendering, cleaning and dedup
    inside the part; ``kept[0]`` counts the rendered records."""
    opts = job.cleaning
    renderer = RecordRenderer(SourceSpec.model_validate({"path": "-", **job.spec}))
    seen: set[bytes] = set()
    near = NearDedup(opts.near_dedup) if opts.near_dedup else None
    for piece in part.pieces:
        for text in iter_piece(piece, skips, renderer, job.max_doc_bytes, removed, opts.code_languages):
            kept[0] += 1
            if opts.latex:
                text = clean_latex(text)
            reason = quality_problem(text, opts)
            digest = content_hash(text)
            if reason is None and opts.exact_dedup:
                if digest in seen:
                    reason = "exact_duplicate"
                seen.add(digest)
            if reason is None and near is not None and near.is_duplicate(text):
                reason = "near_duplicate"
            if reason:
                removed[reason] += 1
                continue
            yield piece.split or split_of_text(text, job.val_fraction), text, digest


class _SplitFile:
    """One split's token file, offsets and hashes, written as documents arrive."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype):
        self.folder, self.split, self.dtype = folder, split, dtype
        self.file = open(folder / f"{split}-tokens.bin", "wb")
        self.offsets = [0]
        self.hashes: list[bytes] = []

    def add(self, ids: np.ndarray, digest: bytes) -> None:
        self.file.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self.offsets.append(self.offsets[-1] + len(ids))
        self.hashes.append(digest)

    def close(self) -> dict:
        self.file.close()
        np.save(self.folder / f"{self.split}-docs.npy", np.asarray(self.offsets, dtype=np.int64))
        hashes = np.frombuffer(b"".join(self.hashes), dtype=np.uint8).reshape(-1, 16)
        np.save(self.folder / f"{self.split}-hashes.npy", hashes)
        return {"docs": len(self.offsets) - 1, "tokens": self.offsets[-1]}


_TOKENIZERS: dict[str, object] = {}


def _tokenizer(job: PartJob):
    tok = _TOKENIZERS.get(job.fingerprint)
    if tok is None:
        from tokenizers import Tokenizer

        tok = _TOKENIZERS[job.fingerprint] = Tokenizer.from_str(job.tokenizer_json)
    return tok


def prepare_part(part: Part, job: PartJob) -> dict:
    """Prepare ``part`` into ``job.out/parts/<part>/`` (see the module docstring) and return its counts:
    ``{"part", "source", "splits": {split: {"docs", "tokens"}}, "skipped", "removed", "kept", "bytes"}``."""
    from syllabus.data.text_stream import encode_documents

    parts_dir = Path(job.out) / "parts"
    final = parts_dir / part.name
    tmp = temp_path(final)
    for stale in parts_dir.glob(f"{part.name}.tmp-*"):  # left by a run that died while writing this part
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = _tokenizer(job)
    files = {s: _SplitFile(tmp, s, np.dtype(job.dtype)) for s in SPLITS}
    skips, removed, kept = Counter(), Counter(), [0]
    batch: list[tuple[str, str, bytes]] = []

    def flush():
        for (split, _, digest), ids in zip(batch, encode_documents(tok, [t for _, t, _ in batch], job.eos)):
            files[split].add(ids, digest)
        batch.clear()

    for doc in iter_part_documents(part, job, skips, removed, kept):
        batch.append(doc)
        if len(batch) == BATCH_DOCS:
            flush()
    flush()
    counts = {"part": part.index, "source": part.source, "splits": {s: f.close() for s, f in files.items()},
              "skipped": dict(skips), "removed": dict(removed), "kept": kept[0], "bytes": part.bytes}
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json(final / DONE, {"fingerprint": job.fingerprint, "options": job.options, **counts})
    return counts


def temp_path(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process on this machine (tasks on several machines
    may share the folder)."""
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it)."""
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_done(folder: Path) -> dict | None:
    """The done marker of a part folder, or ``None`` when the part is not (completely) done."""
    try:
        return json.loads((folder / DONE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
