"""Packed rows from prepared shards, by virtual offset (random access, O(1) state).

Invariant: the source is an endless token stream made of epochs; epoch ``e`` is every document of
the split (each ending in EOS) in the order ``permutation(seed, e)`` (identity when not shuffled).
A row of ``length`` tokens is the next ``length`` tokens of that stream, crossing document and
epoch boundaries. The whole state is ``(epoch, offset)``: skipping a row is arithmetic, so a rank
that does not keep a row pays nothing for it.
"""

from __future__ import annotations

import numpy as np

from syllabus.data.shards import ShardSet


def epoch_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *[k & 0xFFFFFFFF for k in keys]])


class ShardRowStream:
    def __init__(self, shards: ShardSet, *, seed: int = 0, shuffle: bool = True):
        if shards.num_tokens == 0:
            from syllabus.config.errors import ConfigError

            raise ConfigError(f"data source {shards.folder}: no tokens")
        self.shards = shards
        self.seed = seed
        self.shuffle = shuffle
        self.epoch_tokens = shards.num_tokens
        self.epoch = 0
        self.offset = 0
        self._cached_epoch = -1
        self._order = self._cum = None

    def _layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if epoch != self._cached_epoch:
            n = self.shards.num_docs
            order = epoch_rng(self.seed, epoch).permutation(n) if self.shuffle else np.arange(n)
            self._order = order
            self._cum = np.concatenate([[0], np.cumsum(self.shards.doc_len[order])])
            self._cached_epoch = epoch
        return self._order, self._cum

    @property
    def tokens_consumed(self) -> int:
        return self.epoch * self.epoch_tokens + self.offset

    def epochs(self) -> float:
        return self.tokens_consumed / self.epoch_tokens

    def exhausted_for(self, length: int, max_epochs: float | None) -> bool:
        """True when one more row would go past ``max_epochs`` epochs of this source."""
        return max_epochs is not None and self.tokens_consumed + length > max_epochs * self.epoch_tokens

    def skip_row(self, length: int) -> None:
        total = self.offset + length
        self.epoch += total // self.epoch_tokens
        self.offset = total % self.epoch_tokens

    def read_row(self, length: int) -> np.ndarray:
        pieces, need = [], length
        while need:
            order, cum = self._layout(self.epoch)
            i = int(np.searchsorted(cum, self.offset, side="right")) - 1
            doc = int(order[i])
            within = self.offset - int(cum[i])
            take = min(need, int(self.shards.doc_len[doc]) - within)
            pieces.append(self.shards.doc_slice(doc, within, within + take))
            need -= take
            self.skip_row(take)
        return np.concatenate(pieces).astype(np.int64)

    def read_document(self, max_len: int, keep: bool = True) -> np.ndarray | None:
        """The rest of the current document, at most ``max_len`` tokens; the position moves to the next
        document's start (unpacked batches: whole documents, truncated)."""
        order, cum = self._layout(self.epoch)
        i = int(np.searchsorted(cum, self.offset, side="right")) - 1
        doc, within = int(order[i]), self.offset - int(cum[i])
        piece = self.shards.doc_slice(doc, within, min(within + max_len, int(self.shards.doc_len[doc]))) \
            if keep else None
        self.skip_row(int(cum[i + 1]) - self.offset)
        return None if piece is None else piece.astype(np.int64)

    def skipped(self) -> dict[str, int]:
        return dict(self.shards.header.get("skipped", {}))

    def state_dict(self) -> dict:
        return {"kind": "shards", "epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
