"""One proxy run = one ordinary plan run folder, trained by ``syllabus run`` in its own process.

A proxy plan is the user's plan with the searched stage's mixture replaced and its budget cut to the proxy's:

- **proxy mode** (from scratch): the plan reduced to that one stage, replay spelled out as source weights (a
  lone stage has no earlier stage to replay from), every special token up to the stage added by it, and the
  ``--proxy KEY=VALUE`` edits (a smaller model, say) applied last;
- **branch mode** (from a paused run): the stages up to the searched one, unchanged before it, in a run folder
  seeded with the paused run's state, tokenizer and previous stage's ``final`` checkpoint (hard links), so the
  ordinary stage hand-over starts every proxy from the real model.

Either way the stage's end-of-stage evaluation scores the objective's domains (and task), and nothing in the
run is new: metrics, evals, checkpoints, resume and ``syllabus compare`` are the runner's own.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from syllabus.config.errors import ConfigError
from syllabus.config.load import apply_overrides, validate
from syllabus.config.plan import PlanConfig
from syllabus.mix.space import REPLAY
from syllabus.plan.run_state import RunState
from syllabus.plan.stages import stage_weights


@dataclass(frozen=True)
class Objective:
    """What a proxy is scored by (lower is better): the mean held-out loss (nats/token) over ``domains``
    weighted by their values (normalised), or, with ``task`` (a ``<task>/<metric>`` key of the stage's task
    results), minus that score, with its standard error."""

    domains: dict[str, float]
    task: str | None = None

    def describe(self) -> str:
        if self.task:
            return f"-{self.task} (benchmark score, negated: lower is better)"
        return "mean held-out loss over " + ", ".join(f"{d} (weight {w:.3g})" for d, w in self.domains.items())

    def score(self, results: dict) -> tuple[float, float | None, dict[str, float]]:
        """(objective, its standard error or None, per-domain held-out losses) from a stage's results."""
        losses = {d: math.log(results[f"ppl/{d}"]) for d in self.domains if f"ppl/{d}" in results}
        if self.task:
            value = results.get(self.task)
            stderr = results.get(f"{self.task}_stderr")
            return (-value if value is not None else float("nan")), stderr, losses
        missing = [d for d in self.domains if d not in losses]
        if missing:
            return float("nan"), None, losses
        total = sum(self.domains.values())
        return sum(w * losses[d] for d, w in self.domains.items()) / total, None, losses


def default_domains(plan: PlanConfig, index: int) -> list[str]:
    """The stage's own sources plus the sources its forgetting gate watches (those an earlier stage trained)."""
    earlier = {s for stage in plan.stages[:index] for s in stage.data}
    watched = [d for d in plan.forgetting.domains if d in earlier]
    return list(dict.fromkeys(list(plan.stages[index].data) + watched))


def stage_components(plan: PlanConfig, index: int) -> dict[str, float]:
    """The searched stage's mixture as components: its ``data`` shares plus ``replay`` (its fraction)."""
    stage = plan.stages[index]
    comps = dict(stage.data)
    if stage.replay:
        comps[REPLAY] = stage.replay.fraction
    return comps


def with_components(stage: dict, weights: dict[str, float]) -> dict:
    """A stage mapping (``model_dump(by_alias=True)``) with ``data`` and ``replay.fraction`` from ``weights``
    (a replay share of 0 drops the replay block)."""
    stage = copy.deepcopy(stage)
    stage["data"] = {name: float(weights[name]) for name in stage["data"]}
    if stage.get("replay"):
        share = float(weights[REPLAY])
        if share <= 1e-9:
            stage["replay"] = None
        else:
            stage["replay"]["fraction"] = share
    return stage


def proxy_plan(plan: PlanConfig, index: int, weights: dict[str, float], *, steps: int, objective: Objective,
               branch: bool, tokenizer: str | None, edits: list[str], name: str) -> dict:
    """The plan a proxy trains, as a mapping ready for YAML (checked by validating it; ``ConfigError`` names
    the field an ``edits`` entry broke)."""
    data = plan.model_dump(by_alias=True)
    stage = with_components(data["stages"][index], weights)
    full_steps = plan.stages[index].budget.steps
    warmup = stage["lr"]["warmup"]
    if full_steps:  # the same schedule shape, shrunk: warmup keeps its share of the stage
        warmup = round(warmup * steps / full_steps)
    stage.update(budget={"steps": steps}, expect={}, pause=False, merge=None,
                 lr={**stage["lr"], "warmup": min(warmup, steps - 1)},
                 evaluation={"perplexity": list(objective.domains), "tasks": [objective.task.split("/")[0]]
                             if objective.task else [], "every": steps, "replace": True,
                             "batches": plan.stage_evaluation(index).batches,
                             "limit": plan.stage_evaluation(index).limit})
    if branch:
        data["stages"] = data["stages"][:index] + [stage]
        data["forgetting"]["action"] = "warn"  # the gate may not change the sampled mixture
    else:
        as_sources = stage_weights(validate(PlanConfig, {**data, "stages": data["stages"][:index] + [stage]}), index)
        stage.update(data=as_sources, replay=None, optimizer="fresh",
                     special_tokens=[t for s in plan.stages[:index + 1] for t in s.special_tokens])
        data.update(stages=[stage], forgetting={"watch": []}, name=name)
        if tokenizer:
            data["tokenizer"] = {"path": tokenizer}
    data = apply_overrides(data, edits)
    validate(PlanConfig, data)
    return data


def seed_branch_folder(source_run: Path, folder: Path, plan: PlanConfig, index: int) -> None:
    """Make ``folder`` the paused run ``source_run`` as it stood after stage ``index - 1``: its run state
    (stages before ``index``), tokenizer and that stage's ``final`` checkpoint (hard links, no copy). Does
    nothing when ``folder`` already has a run state (a proxy being resumed). Raises ``ConfigError`` when the
    previous stage has not finished there or the searched stage has already started."""
    if (folder / "run_state.json").exists():
        return
    state = RunState.load(source_run)
    before, searched = plan.stages[index - 1].name, plan.stages[index].name
    if before not in state.completed:
        raise ConfigError(f"--from-run: stage '{before}' has not finished in {source_run} (run it with "
                          f"--pause-after {before} first)")
    if searched in state.started:
        raise ConfigError(f"--from-run: stage '{searched}' has already started in {source_run}; a branch search "
                          f"starts where it would begin")
    kept = [s.name for s in plan.stages[:index]]
    seeded = RunState(started={k: v for k, v in state.started.items() if k in kept}, completed=list(kept),
                      reference_ppl=dict(state.reference_ppl), results={k: state.results[k] for k in kept
                                                                        if k in state.results},
                      precision={k: v for k, v in state.precision.items() if k in kept})
    final = Path("stages") / f"{index}-{before}" / "checkpoints" / "final"
    for file in (source_run / final).rglob("*"):
        if file.is_file():
            target = folder / final / file.relative_to(source_run / final)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(file, target)
    if (source_run / "tokenizer.json").exists():
        shutil.copyfile(source_run / "tokenizer.json", folder / "tokenizer.json")
    seeded.save(folder)


def proxy_finished(folder: Path, stage: str) -> dict | None:
    """The searched stage's end-of-stage results in a proxy run folder, or None while it has not finished."""
    state = RunState.load(folder) if (folder / "run_state.json").exists() else None
    return state.results.get(stage) if state and stage in state.completed else None


def launch(plan_file: Path, folder: Path, threads: int) -> subprocess.Popen:
    """``python -m syllabus run plan_file --out folder`` with ``threads`` intra-op threads, output appended to
    ``folder/log.txt``. The child gets SIGTERM if this process dies, so it saves and stops like a run that is
    interrupted (running the search again resumes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(folder / "log.txt", "a") as out:
        return subprocess.Popen([sys.executable, "-m", "syllabus", "run", str(plan_file), "--out", str(folder)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_plan_file(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
