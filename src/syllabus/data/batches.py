"""The trainer's door: :func:`open_batches`, :func:`iter_eval_batches`, :func:`epoch_tokens`.

Global order: every call ``next_batch(B, T)`` consumes the next ``world_size * B`` rows of one
global sequence of rows (each ``T + 1`` tokens, drawn by :class:`MixedDomainDataset`); rank ``r``
keeps rows ``[r*B, (r+1)*B)`` and skips the others. The global sequence depends only on the seed,
the sources, the weights and the sequence of ``(B * world_size, T)`` requests, never on the rank
count or the workers, so a checkpoint taken with 8 ranks resumes on 2 (with B scaled so that the
global batch is the same, rows continue exactly).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

from syllabus.config.source import SourceSpec, as_source_spec
from syllabus.data.mixture import MixedDomainDataset
from syllabus.data.packing import pad_documents, rows_to_batch
from syllabus.data.shard_stream import ShardRowStream
from syllabus.data.shards import ShardSet, TokensNotDeclared, shard_folder
from syllabus.data.sources import is_hub_spec
from syllabus.data.text_stream import TextStreamDataset, read_ahead_workers
from syllabus.data.tokenizer import as_tokenizer, eos_id, pad_id


log = logging.getLogger("syllabus")


def source_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) & 0xFFFFFFFF


def open_source(path: "str | Path | SourceSpec", tokenizer, *, split: str = "train", seed: int = 0,
                shuffle: bool = True, num_workers: int = 0, text_field: str = "text"):
    """A row stream for one source (a path or a :class:`SourceSpec`): prepared shards (memmap; their
    tokenizer and render options must match), a hub dataset streamed by ``datasets``, or raw files
    (tokenized on the fly)."""
    spec = as_source_spec(path) if not isinstance(path, (str, Path)) else \
        SourceSpec(path=str(path), **({"text_field": text_field} if text_field != "text" else {}))
    if is_hub_spec(spec.path):
        from syllabus.data.hub_stream import HubStreamDataset

        return HubStreamDataset(spec, tokenizer, split=split, shuffle=shuffle, seed=seed)
    folder = shard_folder(spec.path, split)
    if folder is not None:
        shards = ShardSet(folder)
        shards.check_tokenizer(tokenizer)
        shards.check_render_options(spec.render_options(explicit=True))
        return ShardRowStream(shards, seed=seed, shuffle=shuffle)
    return TextStreamDataset(spec, tokenizer, split=split, shuffle=shuffle, seed=seed, num_workers=num_workers)


class Batches:
    """Batches of one rank from a mixture; see the module docstring for the order invariant."""

    def __init__(self, mixture: MixedDomainDataset, *, eos: int, rank: int = 0, world_size: int = 1,
                 doc_attention: bool = False, packed: bool = True, pad: int | None = None):
        if not 0 <= rank < world_size:
            from syllabus.config.errors import ConfigError

            raise ConfigError(f"rank: must be in [0, {world_size}), got {rank}")
        self.mixture, self.eos = mixture, eos
        self.rank, self.world_size, self.doc_attention = rank, world_size, doc_attention
        self.packed, self.pad = packed, eos if pad is None else pad

    def next_batch(self, micro_batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        """Packed: rows of ``seq_len + 1`` tokens. Unpacked: whole documents truncated to ``seq_len + 1``
        tokens, padded to the longest of this rank's micro-batch (labels -100 on padding)."""
        lo, hi = self.rank * micro_batch_size, (self.rank + 1) * micro_batch_size
        rows = []
        for g in range(self.world_size * micro_batch_size):
            take = self.mixture.next_row if self.packed else self.mixture.next_document
            row = take(seq_len + 1, keep=lo <= g < hi)
            if row is not None:
                rows.append(row)
        if not self.packed:
            return pad_documents(rows, pad_id=self.pad, doc_attention=self.doc_attention)
        return rows_to_batch(rows, eos_id=self.eos, doc_attention=self.doc_attention)

    def state_dict(self) -> dict:
        return {"version": 1, "mixture": self.mixture.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.mixture.load_state_dict(state["mixture"])

    def mix_report(self) -> dict[str, dict]:
        return self.mixture.mix_report()

    def skipped(self) -> dict[str, dict[str, int]]:
        return self.mixture.skipped()

    def set_weights(self, weights: dict[str, float]) -> None:
        self.mixture.set_weights(weights)

    def close(self) -> None:
        for stream in self.mixture.streams.values():
            getattr(stream, "close", lambda: None)()


def open_batches(sources: "dict[str, str | SourceSpec]", weights: dict[str, float], tokenizer, *, split: str = "train",
                 seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 doc_attention: bool = False, num_workers: "int | str" = 0,
                 max_epochs: dict[str, float] | None = None, packed: bool = True) -> Batches:
    """Open a token-weighted mixture of sources as this rank's batches (see :class:`Batches`).

    ``sources``: name → path (prepared shards, or JSONL/text/Parquet files, folders, globs, ``hf:`` specs);
    ``weights``: name → share of tokens (summing to 1). ``seed`` fixes each source's shuffle; ``rank`` of
    ``world_size`` keeps this rank's slice of one global row order (the same for any world size).
    ``batches.next_batch(micro_batch_size, seq_len)`` returns int64 [micro_batch_size, seq_len]
    ``input_ids`` and ``labels`` (already shifted by one; and int32 ``doc_ids`` with ``doc_attention``);
    ``state_dict()``/``load_state_dict()`` make the position resumable exactly. ``num_workers`` > 0 tokenizes
    raw text ahead in that many DataLoader worker processes per raw source; ``"auto"``: the cores left free
    by the compute threads, shared among the raw sources (``text_stream.read_ahead_workers``; the choice is
    logged). Files are opened lazily; a missing or unreadable source raises ``ConfigError`` naming it.
    ``packed`` False: whole documents (truncated to ``seq_len``) padded to the longest in the micro-batch,
    labels -100 on padding."""
    tok = as_tokenizer(tokenizer)
    streams = {name: open_source(path, tok, split=split, seed=source_seed(seed, name), shuffle=shuffle,
                                 num_workers=0 if num_workers == "auto" else int(num_workers))
               for name, path in sources.items()}
    if num_workers == "auto":
        raw = [s for s in streams.values() if isinstance(s, TextStreamDataset)]
        workers = read_ahead_workers(len(raw))
        for stream in raw:
            stream.num_workers = workers
        if raw:
            log.info("read-ahead: %s", f"{workers} worker process(es) per raw source ({len(raw)})" if workers else
                     f"none for {len(raw)} raw source(s): no core free beyond the compute threads "
                     "(`syllabus prepare` them to read faster)")
    mixture = MixedDomainDataset(streams, weights, max_epochs=max_epochs)
    return Batches(mixture, eos=eos_id(tok), rank=rank, world_size=world_size, doc_attention=doc_attention,
                   packed=packed, pad=pad_id(tok))


def iter_eval_batches(path: str, tokenizer, *, seq_len: int, batch_size: int, max_batches: int | None = None,
                      split: str = "val") -> Iterator[dict[str, torch.Tensor]]:
    """Deterministic, unshuffled packed batches over one pass of a source's ``split`` (the last
    batch may hold fewer rows; a tail shorter than one row is dropped)."""
    tok = as_tokenizer(tokenizer)
    try:
        stream = open_source(path, tok, split=split, shuffle=False)
    except TokensNotDeclared as err:  # e.g. a reasoning source scored before the stage that adds <think>
        log.info("not evaluated in this stage: %s", err)
        return
    total = epoch_tokens_of(stream)
    rows_left = total // (seq_len + 1)
    produced = 0
    while rows_left > 0 and (max_batches is None or produced < max_batches):
        n = min(batch_size, rows_left)
        yield rows_to_batch([stream.read_row(seq_len + 1) for _ in range(n)], eos_id=eos_id(tok))
        rows_left -= n
        produced += 1


def epoch_tokens_of(stream) -> int:
    return stream.epoch_tokens if isinstance(stream, ShardRowStream) else stream.count_epoch_tokens()


def epoch_tokens(path: "str | Path | SourceSpec", tokenizer, split: str = "train") -> int:
    """Tokens (EOS included) in one epoch of a source: from the header for shards; raw sources are
    tokenized once."""
    tok = as_tokenizer(tokenizer)
    spec = as_source_spec(path)
    folder = None if is_hub_spec(spec.path) else shard_folder(spec.path, split)
    if folder is not None:  # from the header, whatever special tokens the shards were prepared with
        return ShardSet(folder).num_tokens
    return epoch_tokens_of(open_source(path, tok, split=split, shuffle=False))
