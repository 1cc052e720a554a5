"""A ``datasets`` streaming source (``hf:owner/name[:config]``, ``hf:json:FILES``, a saved dataset folder)
as a row stream: :class:`HubStreamDataset`.

Order (a pure function of the seed, the same on every rank): the split's rows in the dataset's own order are
cut into *units* of ``ROWS_PER_UNIT`` consecutive rows; epoch ``e`` visits the units in order (a stream has no
cheap random access, so units are not permuted) and shuffles the documents of unit ``k`` by
``permutation(seed, e, k)``. Packing, state and resume are those of :class:`TextStreamDataset`: the state
names a unit, and resuming re-reads that unit with ``IterableDataset.skip`` (one pass over the rows before
it). Every rank reads every row and keeps only its own, so the global order is the same at any world size.

Held-out rows: the dataset's validation split when it has one, else the same content-hash split as files.
The number of rows (hence units per epoch) comes from the dataset's metadata, else from one counting pass.
"""

from __future__ import annotations

import logging
from collections import Counter

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data.records import RecordRenderer
from syllabus.data.hub import hub_stream
from syllabus.data.sources import explain_skips
from syllabus.data.text_stream import DEFAULT_VAL_FRACTION, TextStreamDataset, unit_item
from syllabus.data.tokenizer import as_tokenizer, eos_id, pad_id

log = logging.getLogger("syllabus")

ROWS_PER_UNIT = 256


class HubUnits:
    """Global unit number ``u`` -> the tokenized, shuffled documents of that unit's rows (see the module
    docstring). Keeps one live iterator, so reading units in order costs one pass."""

    def __init__(self, stream, tokenizer, renderer: RecordRenderer, *, split: str, hash_split: bool,
                 val_fraction: float, shuffle: bool, seed: int, num_rows: int, rows_per_unit: int):
        self.stream, self.tok, self.renderer = stream, tokenizer, renderer
        self.split, self.hash_split, self.val_fraction = split, hash_split, val_fraction
        self.shuffle, self.seed, self.rows_per_unit = shuffle, seed, rows_per_unit
        self.units = [None] * max(1, -(-num_rows // rows_per_unit))
        self.eos = eos_id(tokenizer)
        self.max_doc_bytes = None
        self._iter, self._at = None, -1  # live iterator and the row it yields next

    def unit_index(self, u: int) -> int:
        return u % len(self.units)

    def _rows(self, index: int) -> list[dict]:
        start = index * self.rows_per_unit
        if self._iter is None or self._at != start:
            self._iter = iter(self.stream.skip(start) if start else self.stream)
            self._at = start
        rows = []
        for _ in range(self.rows_per_unit):
            row = next(self._iter, None)
            if row is None:
                self._iter = None
                break
            rows.append(row)
        self._at = start + len(rows)
        return rows

    def __getitem__(self, u: int) -> dict:
        epoch, index = divmod(u, len(self.units))
        skips: Counter = Counter()
        rendered = [t for t in (self.renderer.render(r, skips) for r in self._rows(index)) if t is not None]
        return unit_item(self, u, epoch, index, rendered, skips)


class HubStreamDataset(TextStreamDataset):
    """Rows from a ``datasets`` streaming source; the interface of :class:`TextStreamDataset` (no workers)."""

    def __init__(self, spec: SourceSpec, tokenizer, *, split: str = "train", shuffle: bool = True, seed: int = 0,
                 val_fraction: float = DEFAULT_VAL_FRACTION, packed: bool = True, doc_attention: bool = False,
                 rows_per_unit: int | None = None, **_ignored):
        self.tok = as_tokenizer(tokenizer)
        self.spec, self.all_files, self.name = spec, [], spec.path
        stream = hub_stream(spec.path, split)
        hash_split = stream is None or (split == "train" and hub_stream(spec.path, "val") is None)
        if stream is None:  # no validation split: hold out rows of the train split by content hash
            stream = hub_stream(spec.path, "train")
            if stream is None:
                raise ConfigError(f"data source {spec.path}: no train split")
        self.stream = stream
        if spec.val_fraction is not None:  # the source's own split fraction wins
            val_fraction = spec.val_fraction
        self.source = HubUnits(stream, self.tok, RecordRenderer(spec), split=split, hash_split=hash_split,
                               val_fraction=val_fraction, shuffle=shuffle, seed=seed,
                               num_rows=_num_rows(stream, spec.path), rows_per_unit=rows_per_unit or ROWS_PER_UNIT)
        self.units = self.source.units
        self.seq_len, self.packed, self.doc_attention = None, packed, doc_attention
        self.eos, self.pad = eos_id(self.tok), pad_id(self.tok)
        self.num_workers, self.loader_batch_size = 0, 1
        self.epoch_tokens = None
        self._loader_iter = None
        self.load_state_dict({"unit_seq": 0, "doc": 0, "offset": 0, "tokens_consumed": 0, "skips": {},
                              "skips_counted": 0, "kept": 0})

    def state_dict(self) -> dict:
        return {**super().state_dict(), "kind": "hub"}

    def _first_epoch_skips(self) -> Counter:
        skips: Counter = Counter()
        for u in range(len(self.units)):
            skips.update(self.source[u]["skips"])
        return skips

    def _explain(self, skips, kept: int, problem: str | None = None) -> str:
        return explain_skips(self.name, skips, self.spec, None, kept, records=self.source._rows(0)[:50],
                             problem=problem)


def _num_rows(stream, name: str) -> int:
    splits = getattr(getattr(stream, "info", None), "splits", None) or {}
    split = getattr(stream, "split", None)
    if split is not None and str(split) in splits and splits[str(split)].num_examples:
        return int(splits[str(split)].num_examples)
    log.info("data source %s: counting its rows once (the dataset does not say how many it has)", name)
    return sum(1 for _ in stream)
