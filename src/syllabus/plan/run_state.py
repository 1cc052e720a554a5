"""``run_state.json``: which stages started and finished, their frozen configs, the precision each trains in,
and reference perplexities.

Invariant kept: a stage's config is frozen the moment it starts; a later edit to it is refused, while
stages not yet started may change freely between runs. One exception: a stage that started but has not
finished may change its mixture weights (the values of ``data`` and ``replay.fraction``, the same sources);
it then continues from its newest checkpoint with the new weights (``runner``, "re-weight on resume").
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.plan.numbers import finite_or_none

FILE = "run_state.json"


@dataclass
class RunState:
    started: dict[str, dict] = field(default_factory=dict)  # stage name -> its config as it started
    completed: list[str] = field(default_factory=list)
    reference_ppl: dict[str, float] = field(default_factory=dict)  # domain -> ppl at the end of its stage
    results: dict[str, dict] = field(default_factory=dict)  # stage name -> end-of-stage evaluation
    reweights: list[dict] = field(default_factory=list)  # mixture edits applied to running stages, in order
    decisions: list[dict] = field(default_factory=list)  # every decision at a stage end (plan/decisions.py)
    extensions: dict[str, int] = field(default_factory=dict)  # stage name -> extensions decided so far
    # stage name -> the precision it trains in, as its trainer resolved it (``PrecisionChoice.to_dict()``:
    # requested, chosen, reason, matmul peaks in FLOP/s); rewritten each time the stage (re)starts
    precision: dict[str, dict] = field(default_factory=dict)
    # stage name -> the kernels it computes with (``KernelChoice.to_dict()``: attention path and loss group per
    # shape class, measured per machine by ``train/calibration.py``, with the timings they were chosen by)
    kernels: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> "RunState":
        path = run_dir / FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / (FILE + ".tmp")
        tmp.write_text(json.dumps(finite_or_none(asdict(self)), indent=2, sort_keys=True))
        os.replace(tmp, run_dir / FILE)

    def check_frozen(self, stages: list[dict]) -> list[str]:
        """Refuse edits to stages that already started, one line per edited stage naming the fields; allow
        new mixture weights for a stage that started and has not finished. Returns the names of the stages
        whose weights were edited (their frozen config becomes the edited one)."""
        by_name = {s["name"]: s for s in stages}
        problems, reweighted = [], []
        for name, frozen in self.started.items():
            if name not in by_name:
                problems.append(f"stages: '{name}' has started in this run folder and cannot be removed")
                continue
            # A field added to stages since the folder was written reads as its default (None): not an edit.
            edited = by_name[name]
            changed = sorted(k for k in set(frozen) | set(edited) if frozen.get(k) != edited.get(k))
            if not changed:
                continue
            if name not in self.completed and _only_weights_changed(frozen, edited):
                reweighted.append(name)
                continue
            finished = name in self.completed
            problems.append(f"stages.{name}: {', '.join(changed)} changed, but this stage has "
                            f"{'finished' if finished else 'started'}; its config is frozen "
                            f"({'' if finished else 'only its data weights and replay.fraction may change; '}"
                            f"edit only stages not yet started, or use a new --out)")
        if problems:
            raise ConfigError(problems)
        for name in reweighted:
            self.started[name] = by_name[name]
        return reweighted


def _only_weights_changed(frozen: dict, edited: dict) -> bool:
    """True when the two stage configs differ only in the values of ``data`` and ``replay.fraction``."""
    def without_weights(stage: dict) -> dict:
        replay = stage.get("replay")
        kept = {k: v for k, v in stage.items() if v is not None}  # a field added since reads as None
        return {**kept, "data": sorted(stage.get("data", {})),
                "replay": {**replay, "fraction": None} if isinstance(replay, dict) else replay}

    return without_weights(frozen) == without_weights(edited)
