"""Benchmark tasks inside a stage: a trainer step hook that runs the stage's tasks every ``tasks_every`` steps.

Invariant kept: evaluation draws no training randomness — tasks decode greedily (or from their own
seeded generators), touch neither the global RNG nor the data position, and put the model back in
training mode — so a run with in-stage tasks trains exactly as one without, and resumes exactly. The
stage's last step is left to the end-of-stage evaluation (no duplicate row). Every rank runs the tasks
(a sharded model needs all of them for a forward pass); the main rank writes one row to ``evals.jsonl``
(``kind: in_stage``) and the same scores to ``metrics.jsonl`` / TensorBoard / W&B.
"""

from __future__ import annotations

import logging
from typing import Sequence

log = logging.getLogger("syllabus")


class StageTasks:
    def __init__(self, tasks: Sequence[str], every: int, limit: int | None, stage_index: int, evals, metrics,
                 options: dict | None = None):
        self.tasks, self.every, self.limit = list(tasks), every, limit
        self.options = options or {}  # run_tasks's shots and items
        self.stage_index = stage_index
        self.evals, self.metrics = evals, metrics  # MetricsLog-like (None on other ranks)

    def __call__(self, trainer) -> None:
        if not self.tasks or trainer.step % self.every or trainer.step >= trainer.config.max_steps:
            return
        from syllabus.evaluate import run_tasks

        scores = run_tasks(trainer.raw_model, trainer.tokenizer, self.tasks, limit=self.limit,
                           autocast=trainer.autocast_dtype,  # in the run's precision
                           **self.options)
        trainer.raw_model.train()
        scores = {k: v for k, v in scores.items() if not k.endswith("/seconds")}
        row = {"stage": trainer.stage, "stage_index": self.stage_index, "step": trainer.step,
               "tokens_seen": trainer.tokens_seen, "kind": "in_stage", **scores}
        if self.evals is not None:
            self.evals.log(row)
        if self.metrics is not None:
            self.metrics.log({"step": trainer.step, "stage": trainer.stage, "event": "tasks", **scores})
        log.info("step %d: %s", trainer.step, " ".join(f"{k}={v:.3f}" for k, v in scores.items()
                                                      if not k.endswith(("/n", "_stderr", "_n"))))
