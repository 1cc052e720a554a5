"""How many documents a source holds out for evaluation, counted before anything trains.

The held-out rows of a source come from a ``val`` file, else a ``test`` file, else a content-hash split of the
training files (``val_fraction`` of the documents, 1% unless the source sets ``val_fraction``); see
:func:`syllabus.data.sources.split_by_names`. A small source split by hash may hold out no document at all, and
a domain without held-out rows is never evaluated: the plan's door refuses it (``syllabus.plan.door``) and the
plan table prints the counts made here.

Counting reads the source's documents (rendered with its record options) up to ``max_bytes`` of text; past
that the count is a lower bound (``exact`` False), which is enough to know that rows exist. Hub sources are not
counted (``docs`` None): reading a remote dataset at the door would cost more than it tells.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from syllabus.config.source import SourceSpec
from syllabus.data.records import RecordRenderer
from syllabus.data.shards import ShardSet, shard_folder
from syllabus.data.sources import (files_for_split, is_hub_spec, plan_units, read_unit, resolve_files,
                                   split_of_name, split_of_text)
from syllabus.data.text_stream import DEFAULT_VAL_FRACTION

COUNT_BYTES = 64 << 20  # text read at most to count a source's held-out documents


@dataclass(frozen=True)
class HeldOut:
    """A source's held-out documents: ``docs`` held out of ``total`` read (None: not counted), ``exact`` False
    when counting stopped early (then ``docs`` is a lower bound), and ``rule`` in words."""

    docs: int | None
    total: int | None
    exact: bool
    rule: str

    def describe(self) -> str:
        """For the plan table, e.g. ``"a 1% content-hash split: 2 of 150 documents"``."""
        if self.docs is None:
            return f"{self.rule} (not counted)"
        if self.exact:
            return f"{self.rule}: {self.docs:,} of {self.total:,} documents"
        return f"{self.rule}: at least {self.docs:,} (of the first {self.total:,} documents read)"


def val_fraction_of(spec: SourceSpec) -> float:
    return DEFAULT_VAL_FRACTION if spec.val_fraction is None else spec.val_fraction


def count_held_out(spec: SourceSpec, max_bytes: int = COUNT_BYTES) -> HeldOut:
    """Count the held-out documents of ``spec`` (see the module docstring). Raises ``ConfigError`` for a
    source whose files do not exist."""
    if is_hub_spec(spec.path):
        return HeldOut(None, None, False, "the dataset's validation (else test) split, else a hash split")
    folder, train = shard_folder(spec.path, "val"), shard_folder(spec.path, "train")
    if folder is not None:  # prepared shards: their val split (a folder of one split is read for both)
        docs = ShardSet(folder).num_docs
        return HeldOut(docs, docs, True, "its prepared val split" if folder != Path(spec.path)
                       else "its prepared shards (one split, read for training too)")
    if train is not None:
        return HeldOut(0, ShardSet(train).num_docs, True, "its prepared shards (no val split)")
    files = resolve_files(spec.path)
    chosen, by_name = files_for_split(files, "val")
    fraction = val_fraction_of(spec)
    if by_name:
        rule = "the val file" if any(split_of_name(f) == "val" for f in chosen) else "the test file"
    else:
        rule = f"a {fraction * 100:g}% content-hash split"
    renderer, skips = RecordRenderer(spec), Counter()
    held = total = read = 0
    for unit in plan_units(chosen):
        for text in read_unit(unit, skips, renderer=renderer):
            total += 1
            read += len(text)
            held += by_name or split_of_text(text, fraction) == "val"
            if read >= max_bytes:
                return HeldOut(held, total, False, rule)
    return HeldOut(held, total, True, rule)
