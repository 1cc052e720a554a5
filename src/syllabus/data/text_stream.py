"""Raw documents streamed, tokenized on the fly and packed: :class:`TextStreamDataset`.

Order (a pure function of the seed, so every consumer can rebuild it):
epoch ``e`` visits the source's *units* (see :mod:`syllabus.data.sources`) in the order
``permutation(seed, e)``; the documents of one unit are tokenized (EOS appended) and shuffled by
``permutation(seed, e, unit)``. The unit is the shuffle buffer: it is rebuilt exactly by reading
that unit again. Rows are the next ``seq_len + 1`` tokens of the resulting stream.

State (small, JSON): ``unit_seq`` (units started since the beginning, i.e. epoch * units + position),
``doc`` and ``offset`` inside the current unit (the packing remainder), tokens consumed and skip
counts. Resuming re-reads and re-tokenizes one unit.

Workers: with ``num_workers > 0`` a torch DataLoader tokenizes the *next units* ahead in worker
processes; the main process still packs rows in unit order, so the rows and the state are the same
for any number of workers.

Cost of world-size independence: every rank walks the whole stream (reads and tokenizes every
unit) and only materialises its own rows; tokenization work is repeated on each rank. Prepare
shards (``syllabus prepare``) when that matters: shards skip other ranks' rows for free.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
from pathlib import Path
from collections import Counter

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data.records import RecordRenderer, Rendered
from syllabus.data.packing import pad_documents, rows_to_batch
from syllabus.data.shard_stream import epoch_rng
import syllabus.data.sources as sources
from syllabus.data.sources import (MAX_DOC_BYTES, explain_skips, files_for_split, plan_units, read_unit,
                                   resolve_files, split_of_text)
from syllabus.data.tokenizer import as_tokenizer, bos_id, eos_id, pad_id

log = logging.getLogger("syllabus")

DEFAULT_VAL_FRACTION = 0.01
ENCODE_CHUNK = 64  # documents per encode_batch call (keeps tokenizer scratch memory small)


def encode_documents(tok, texts: list[str], eos: int) -> list[np.ndarray]:
    """Token ids of each text followed by EOS (int32), preceded by BOS when the tokenizer puts one in front of
    every text (``bos_id``: Llama's, not Qwen's nor syllabus's own).

    A text that carries ``spans`` (a chat rendered for ``loss_on: assistant``, see
    :class:`~syllabus.data.records.Rendered`) marks the tokens to train on: a token whose characters
    overlap no span is stored as ``-(id + 1)`` (:func:`~syllabus.data.packing.pad_documents` turns
    those into inputs with label -100); the closing EOS is trained when the last span ends the text."""
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    bos = bos_id(tok)
    # Never trained on with loss_on: assistant (its span is empty). A post-processor whose start is the
    # end-of-text token itself (syllabus's own export) adds nothing: the previous document's EOS is that start.
    front = [] if bos is None or bos == eos else [bos]
    out: list[np.ndarray] = []
    for i in range(0, len(texts), ENCODE_CHUNK):
        chunk = texts[i: i + ENCODE_CHUNK]
        masked = any(getattr(t, "spans", None) is not None and isinstance(t, Rendered) for t in chunk)
        for text, enc in zip(chunk, (tok.encode_batch if masked else encode)(chunk, add_special_tokens=False)):
            ids = np.empty(len(front) + len(enc.ids) + 1, dtype=np.int32)
            ids[:len(front)] = front
            ids[len(front):-1] = enc.ids
            ids[-1] = eos
            if isinstance(text, Rendered):
                starts = np.array([0] * len(front) + [o[0] for o in enc.offsets] + [len(text)], dtype=np.int64)
                ends = np.array([0] * len(front) + [o[1] for o in enc.offsets] + [len(text)], dtype=np.int64)
                trained = np.zeros(len(ids), dtype=bool)
                for a, b in text.spans:  # a token overlapping a span (" It" starts at the space before it)
                    trained |= (starts < b) & (ends > a)
                trained[-1] = bool(text.spans) and text.spans[-1][1] == len(text)
                ids[~trained] = -ids[~trained] - 1
            out.append(ids)
    return out


class UnitTokens(Dataset):
    """Map-style view: global unit number ``u`` -> that unit's tokenized, shuffled documents."""

    def __init__(self, units, tokenizer, *, split: str, hash_split: bool, val_fraction: float,
                 renderer: RecordRenderer, shuffle: bool, seed: int, max_doc_bytes: int):
        self.units, self.tok = units, tokenizer
        self.split, self.hash_split, self.val_fraction = split, hash_split, val_fraction
        self.renderer, self.shuffle, self.seed, self.max_doc_bytes = renderer, shuffle, seed, max_doc_bytes
        self.eos = eos_id(tokenizer)

    def __len__(self) -> int:  # endless: epochs repeat
        return 1 << 62

    def unit_index(self, u: int) -> int:
        n = len(self.units)
        epoch, pos = divmod(u, n)
        return int(epoch_rng(self.seed, epoch, 1).permutation(n)[pos]) if self.shuffle else pos

    def __getitem__(self, u: int) -> dict:
        epoch = u // len(self.units)
        index = self.unit_index(u)
        skips: Counter = Counter()
        rendered = list(read_unit(self.units[index], skips, renderer=self.renderer, max_doc_bytes=self.max_doc_bytes))
        return unit_item(self, u, epoch, index, rendered, skips)


def unit_item(view, u: int, epoch: int, index: int, rendered: list[str], skips: Counter) -> dict:
    """One unit's item for the stream: its rendered documents on this split (hash split when asked), tokenized
    with EOS, shuffled by (seed, epoch, unit) when ``view.shuffle``. ``view`` holds split, hash_split,
    val_fraction, tok, eos, shuffle and seed (``UnitTokens`` or the hub's units)."""
    texts = [t for t in rendered if not view.hash_split or split_of_text(t, view.val_fraction) == view.split]
    docs = encode_documents(view.tok, texts, view.eos)
    if view.shuffle and len(docs) > 1:
        order = epoch_rng(view.seed, epoch, 2, index).permutation(len(docs))
        docs = [docs[i] for i in order]
    return {"u": u, "docs": docs, "skips": dict(skips), "kept": len(rendered)}


def _die_with_parent(worker_id: int) -> None:
    """Linux: a worker gets SIGKILL when its parent dies, so a killed run leaves no workers behind (a
    worker blocked on a full queue to a dead parent would otherwise wait forever)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _as_is(item):
    return item


class TextStreamDataset(IterableDataset):
    """Stream raw documents of one source, tokenize on the fly, pack (or pad) into rows.

    ``next_batch(micro_batch_size, seq_len)`` returns the next rows; ``state_dict()`` /
    ``load_state_dict()`` resume exactly. Iterating the object (``for row in ds``) yields single
    rows of ``seq_len``; inside DataLoader workers, worker ``w`` keeps the rows of batches
    ``w, w + workers, ...`` (pass the loader's ``batch_size`` as ``loader_batch_size``), so the
    loader's output order is the global order whatever the worker count (each worker tokenizes the
    whole stream). ``packed=False`` batches whole documents (truncated to ``seq_len + 1``) padded
    to the longest, labels ``-100`` on padding.
    """

    def __init__(self, paths: str | Path | list | SourceSpec, tokenizer, *, seq_len: int | None = None,
                 split: str = "train", text_field: str = "text", shuffle: bool = True, seed: int = 0,
                 val_fraction: float = DEFAULT_VAL_FRACTION, packed: bool = True, doc_attention: bool = False,
                 num_workers: int = 0, loader_batch_size: int = 1, unit_bytes: int | None = None, max_doc_bytes: int = MAX_DOC_BYTES):
        self.tok = as_tokenizer(tokenizer)
        self.spec = paths if isinstance(paths, SourceSpec) else SourceSpec(path="-", text_field=text_field)
        specs = [paths.path] if isinstance(paths, SourceSpec) else paths if isinstance(paths, (list, tuple)) \
            else [paths]
        self.all_files = sorted({f for spec in specs for f in resolve_files(spec)})
        files, by_name = files_for_split(self.all_files, split)
        self.name = ", ".join(str(s) for s in specs)
        self.units = plan_units(files, unit_bytes or sources.UNIT_BYTES)
        if self.spec.val_fraction is not None:  # the source's own split fraction wins
            val_fraction = self.spec.val_fraction
        self.source = UnitTokens(self.units, self.tok, split=split, hash_split=not by_name,
                                 val_fraction=val_fraction, renderer=RecordRenderer(self.spec), shuffle=shuffle,
                                 seed=seed, max_doc_bytes=max_doc_bytes)
        self.seq_len, self.packed, self.doc_attention = seq_len, packed, doc_attention
        self.eos, self.pad = eos_id(self.tok), pad_id(self.tok)
        self.num_workers, self.loader_batch_size = num_workers, loader_batch_size
        self.epoch_tokens: int | None = None  # filled by count_epoch_tokens()
        self._loader_iter = None
        self.load_state_dict({"unit_seq": 0, "doc": 0, "offset": 0, "tokens_consumed": 0,
                              "skips": {}, "skips_counted": 0, "kept": 0})

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": "text", "unit_seq": self.unit_seq, "doc": self.doc, "offset": self.offset,
                "tokens_consumed": self.tokens_consumed, "skips": dict(self.skips),
                "skips_counted": self.skips_counted, "kept": self.kept}

    def load_state_dict(self, state: dict) -> None:
        self.unit_seq, self.doc, self.offset = int(state["unit_seq"]), int(state["doc"]), int(state["offset"])
        self.tokens_consumed = int(state["tokens_consumed"])
        self.skips = Counter(state.get("skips", {}))
        self.skips_counted = int(state.get("skips_counted", 0))
        self.kept = int(state.get("kept", 0))
        self._docs: list[np.ndarray] | None = None
        self.close()

    def skipped(self) -> dict[str, int]:
        return dict(self.skips)

    def _explain(self, skips, kept: int, problem: str | None = None) -> str:
        return explain_skips(self.name, skips, self.spec, self.all_files, kept, problem=problem)

    def _first_epoch_skips(self) -> Counter:
        """Skip counts of every unit (read again: a stream that found nothing has not counted them all)."""
        skips: Counter = Counter()
        for unit in self.units:
            list(read_unit(unit, skips, renderer=self.source.renderer, max_doc_bytes=self.source.max_doc_bytes))
        return skips

    def close(self) -> None:
        """Stop prefetching workers (they restart on demand)."""
        self._loader_iter = None

    # -- unit loading ----------------------------------------------------------------------------
    def _fetch(self, u: int) -> dict:
        if self.num_workers <= 0:
            return self.source[u]
        if self._loader_iter is None:
            loader = DataLoader(self.source, batch_size=None, sampler=itertools.count(u),
                                num_workers=self.num_workers, collate_fn=_as_is, prefetch_factor=2,
                                worker_init_fn=_die_with_parent)
            self._loader_iter = iter(loader)
        item = next(self._loader_iter)
        assert item["u"] == u, (item["u"], u)
        return item

    def _current_docs(self) -> list[np.ndarray]:
        empty_run = 0
        while True:
            if self._docs is None:
                item = self._fetch(self.unit_seq)
                self._docs = item["docs"]
                if self.unit_seq >= self.skips_counted and self.unit_seq < len(self.units):
                    self.skips.update(item["skips"])  # first epoch only, once per unit
                    self.kept += item["kept"]
                    self.skips_counted = self.unit_seq + 1
                    if self.skips_counted == len(self.units) and self.kept > 0 and (
                            sum(self.skips.values()) > self.kept or any(k.startswith("unknown_role:")
                                                                        for k in self.skips)):
                        log.warning("%s", self._explain(self.skips, self.kept))
            if self.doc < len(self._docs):
                return self._docs
            empty_run = empty_run + 1 if not self._docs else 0
            if empty_run > len(self.units):
                raise ConfigError(self._explain(self._first_epoch_skips(), 0,
                                                problem=f"no documents for split {self.source.split!r}"))
            self.unit_seq, self.doc, self.offset, self._docs = self.unit_seq + 1, 0, 0, None

    # -- rows ------------------------------------------------------------------------------------
    def _take(self, length: int, keep: bool) -> np.ndarray | None:
        pieces, need = [], length
        while need:
            docs = self._current_docs()
            d = docs[self.doc]
            take = min(need, len(d) - self.offset)
            if keep:
                pieces.append(d[self.offset: self.offset + take])
            self.offset += take
            need -= take
            if self.offset == len(d):
                self.doc, self.offset = self.doc + 1, 0
        self.tokens_consumed += length
        return np.concatenate(pieces).astype(np.int64) if keep else None

    def read_row(self, length: int) -> np.ndarray:
        return self._take(length, keep=True)

    def skip_row(self, length: int) -> None:
        self._take(length, keep=False)

    def read_document(self, max_len: int, keep: bool = True) -> np.ndarray | None:
        """The rest of the current document, at most ``max_len`` tokens (unpacked mode)."""
        d = self._current_docs()[self.doc]
        piece = d[self.offset: self.offset + max_len]
        self.doc, self.offset = self.doc + 1, 0
        self.tokens_consumed += len(piece)
        return piece.astype(np.int64) if keep else None

    def next_batch(self, micro_batch_size: int, seq_len: int, *, rank: int = 0, world_size: int = 1) -> dict:
        """This rank's rows of the next ``world_size * micro_batch_size`` rows of the global order."""
        mine = range(rank * micro_batch_size, (rank + 1) * micro_batch_size)
        rows = []
        for g in range(world_size * micro_batch_size):
            if self.packed:
                row = self._take(seq_len + 1, keep=g in mine)
            else:
                row = self.read_document(seq_len + 1, keep=g in mine)
            if row is not None:
                rows.append(row)
        if self.packed:
            return rows_to_batch(rows, eos_id=self.eos, doc_attention=self.doc_attention)
        return pad_documents(rows, pad_id=self.pad, doc_attention=self.doc_attention)

    def __iter__(self):
        if self.seq_len is None:
            raise ConfigError("TextStreamDataset: seq_len is needed to iterate rows")
        info = get_worker_info()
        workers, me = (info.num_workers, info.id) if info else (1, 0)
        for i in itertools.count():
            batch = self.next_batch(1, self.seq_len, rank=0, world_size=1) if (i // self.loader_batch_size) % workers == me else None
            if batch is None:
                self.skip_row(self.seq_len + 1) if self.packed else self.read_document(self.seq_len + 1, False)
                continue
            yield {k: v[0] for k, v in batch.items()}

    # -- accounting ------------------------------------------------------------------------------
    def epochs(self) -> float:
        """Epochs so far: whole epochs + the fraction of units of the current one started."""
        n = len(self.units)
        within = self.doc / len(self._docs) if self._docs else 0.0
        return (self.unit_seq + within) / n

    def exhausted_for(self, length: int, max_epochs: float | None) -> bool:
        return max_epochs is not None and self.epochs() >= max_epochs

    def count_epoch_tokens(self) -> int:
        """Tokens in one epoch (tokenizes the whole split once; cached)."""
        if self.epoch_tokens is None:
            self.epoch_tokens = sum(len(d) for u in range(len(self.units)) for d in self.source[u]["docs"])
        return self.epoch_tokens


def read_ahead_workers(raw_sources: int, *, cores: int | None = None, local_ranks: int | None = None,
                       threads: int | None = None) -> int:
    """``num_workers: auto``: worker processes per raw source that read, render and tokenize ahead of the
    trainer: the cores left free by the ranks' compute threads, shared among every raw source of every local
    rank, at most ``MAX_AUTO_WORKERS`` each (``(cores - local_ranks * threads) // (local_ranks * raw_sources)``).
    0 where no core is free: a worker on a core the matmuls use slows the step (``docs/data.md``). ``cores``
    defaults to the cores this process may run on, ``local_ranks`` to ``LOCAL_WORLD_SIZE`` (torchrun; 1
    without it), ``threads`` to ``torch.get_num_threads()``. 0 when there is no raw source (prepared shards
    need no worker)."""
    if raw_sources <= 0:
        return 0
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_ranks = local_ranks or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    threads = threads or torch.get_num_threads()
    return max(0, min(MAX_AUTO_WORKERS, (cores - local_ranks * threads) // (local_ranks * raw_sources)))


MAX_AUTO_WORKERS = 4  # per raw source and rank: each holds a tokenizer and two units ahead
