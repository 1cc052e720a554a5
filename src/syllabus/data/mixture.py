"""The weighted, token-accurate mixture of sources, with replay and repetition caps.

Invariant (token accounting): each row is drawn from the active source whose tokens since the last
weight change fall furthest behind its target, i.e. the source maximising
``share_i * (total + row_len) - tokens_i`` (ties go to the first name in sorted order). Realized
token shares therefore stay within one row of the targets at every step, whatever the sequence
length; the choice is deterministic, so it costs no state beyond the per-source token counts. The
seed only decides the order *inside* each source.

``set_weights`` restarts the "since" counters, so a new weight applies from that point on without
a burst to make up for the past. ``max_epochs[name]`` caps repetitions: a source stops being drawn
once one more row would take it past the cap (raw streams: once its epoch position reaches the cap),
and its weight is shared among the others in proportion to theirs; when every source is exhausted
:class:`DataExhausted` is raised.
"""

from __future__ import annotations

import logging

import numpy as np

from syllabus.config.errors import ConfigError

log = logging.getLogger(__name__)


class DataExhausted(StopIteration):
    """Every source of the mixture reached its ``max_epochs``."""


def normalized(weights: dict[str, float]) -> dict[str, float]:
    bad = [f"weights.{k}: must be a number >= 0, got {v!r}" for k, v in weights.items()
           if not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise ConfigError(bad)
    total = float(sum(weights.values()))
    if total <= 0:
        raise ConfigError("weights: at least one weight must be > 0")
    return {k: float(v) / total for k, v in weights.items()}


def with_replay(weights: dict[str, float], replay_weights: dict[str, float], fraction: float) -> dict[str, float]:
    """Current weights scaled to ``1 - fraction`` plus replay sources sharing ``fraction``.

    ``with_replay({"math": 1}, {"wiki": 3, "code": 1}, 0.1) == {"math": 0.9, "wiki": 0.075, "code": 0.025}``;
    a name in both gets the sum.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"replay.fraction: must be in [0, 1), got {fraction}")
    mixed = {k: v * (1 - fraction) for k, v in normalized(weights).items()}
    if fraction > 0:
        for k, v in normalized(replay_weights).items():
            mixed[k] = mixed.get(k, 0.0) + v * fraction
    return mixed


class MixedDomainDataset:
    """Mix row streams (``ShardRowStream`` / ``TextStreamDataset``) by token share."""

    def __init__(self, streams: dict, weights: dict[str, float], *, max_epochs: dict[str, float] | None = None):
        unknown = sorted(set(weights) - set(streams))
        if unknown:
            raise ConfigError([f"weights.{k}: no source of that name (sources: {sorted(streams)})" for k in unknown])
        self.streams = dict(sorted(streams.items()))
        self.max_epochs = dict(max_epochs or {})
        self.tokens_total = {k: 0 for k in self.streams}
        self.set_weights(weights)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change the mixture from the next row on (part of the state)."""
        missing = sorted(set(weights) - set(self.streams))
        if missing:
            raise ConfigError([f"weights.{k}: no source of that name" for k in missing])
        full = {k: float(weights.get(k, 0.0)) for k in self.streams}
        self.weights = normalized(full)
        self.tokens_since = {k: 0 for k in self.streams}
        log.info("mixture weights: %s", {k: round(v, 4) for k, v in self.weights.items()})

    def _active_shares(self, length: int) -> dict[str, float]:
        active = {k: w for k, w in self.weights.items()
                  if w > 0 and not self.streams[k].exhausted_for(length, self.max_epochs.get(k))}
        if not active:
            raise DataExhausted("every source of the mixture reached its max_epochs")
        total = sum(active.values())
        return {k: w / total for k, w in active.items()}

    def choose(self, length: int) -> str:
        shares = self._active_shares(length)
        total = sum(self.tokens_since.values()) + length
        return max(shares, key=lambda k: shares[k] * total - self.tokens_since[k])

    def next_row(self, length: int, keep: bool = True) -> np.ndarray | None:
        name = self.choose(length)
        stream = self.streams[name]
        row = stream.read_row(length) if keep else stream.skip_row(length)
        self.tokens_since[name] += length
        self.tokens_total[name] += length
        return row

    def state_dict(self) -> dict:
        return {"weights": self.weights, "tokens_since": self.tokens_since, "tokens_total": self.tokens_total,
                "streams": {k: s.state_dict() for k, s in self.streams.items()}}

    def load_state_dict(self, state: dict) -> None:
        if sorted(state["streams"]) != sorted(self.streams):
            raise ConfigError(f"data state: sources {sorted(state['streams'])} != {sorted(self.streams)}")
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        self.tokens_since = {k: int(v) for k, v in state["tokens_since"].items()}
        self.tokens_total = {k: int(v) for k, v in state["tokens_total"].items()}
        for k, s in self.streams.items():
            s.load_state_dict(state["streams"][k])

    def mix_report(self) -> dict[str, dict]:
        """Per source: ``tokens`` drawn since this mixture was opened (all ranks' rows of the global order),
        the current ``target_share``, ``realized_share`` over all those tokens, ``realized_share_since_change``
        over the tokens since the last ``set_weights``, epochs read, and whether it is exhausted."""
        total, since = sum(self.tokens_total.values()) or 1, sum(self.tokens_since.values()) or 1
        return {k: {"tokens": self.tokens_total[k], "target_share": self.weights[k],
                    "realized_share": self.tokens_total[k] / total,
                    "realized_share_since_change": self.tokens_since[k] / since, "epochs": self.streams[k].epochs(),
                    "exhausted": self.streams[k].exhausted_for(1, self.max_epochs.get(k))}
                for k in self.streams}

    def skipped(self) -> dict[str, dict[str, int]]:
        return {k: s.skipped() for k, s in self.streams.items()}
