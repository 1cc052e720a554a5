"""``run_state.json``: which stages started and finished, their frozen configs, and reference perplexities.

Invariant kept: a stage's resolved config is frozen the moment it starts; a later edit to it is refused,
while stages not yet started may change freely between runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from syllabus.config.errors import ConfigError

FILE = "run_state.json"


@dataclass
class RunState:
    started: dict[str, dict] = field(default_factory=dict)  # stage name -> its config as it started
    completed: list[str] = field(default_factory=list)
    reference_ppl: dict[str, float] = field(default_factory=dict)  # domain -> ppl at the end of its stage
    results: dict[str, dict] = field(default_factory=dict)  # stage name -> end-of-stage evaluation
    decisions: list[dict] = field(default_factory=list)  # every decision at a stage end (plan/decisions.py)
    extensions: dict[str, int] = field(default_factory=dict)  # stage name -> extensions decided so far

    @classmethod
    def load(cls, run_dir: Path) -> "RunState":
        path = run_dir / FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / (FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, run_dir / FILE)

    def check_frozen(self, stages: list[dict]) -> None:
        """Refuse edits to stages that already started; one line per edited stage."""
        by_name = {s["name"]: s for s in stages}
        problems = []
        for name, frozen in self.started.items():
            if name not in by_name:
                problems.append(f"stages: '{name}' has started in this run folder and cannot be removed")
                continue
            # A field added to stages since the folder was written reads as its default (None): not an edit.
            now = by_name[name]
            changed = sorted(k for k in set(frozen) | set(now) if frozen.get(k) != now.get(k))
            if changed:
                problems.append(f"stages.{name}: {', '.join(changed)} changed, but this stage has "
                                f"{'finished' if name in self.completed else 'started'}; its config is frozen "
                                f"(edit only stages not yet started, or use a new --out)")
        if problems:
            raise ConfigError(problems)
