"""What a stage turns into before it trains: one :class:`StagePlan` per stage, resolved once at the door.

``resolve_stages`` turns a validated ``PlanConfig`` into plain objects (training config, phases, step
budget, tokens to add, sources and weights, evaluation) that the runner reads top to bottom; nothing
downstream picks the plan apart again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from syllabus.config.expect import Expectation, parse_expect
from syllabus.config.plan import MergeSpec, PlanConfig, StageConfig
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.train.schedule import Phase


@dataclass(frozen=True)
class StagePlan:
    """Everything one stage needs, derived once from the plan.

    ``config`` is the stage's full ``PreTrainingConfig`` (budget in steps, LR, evaluation interval, its own
    checkpoint folder as ``out_dir``); ``weights`` are token shares of ``sources`` (replay included, sum 1);
    ``special_tokens`` are every token added by this stage and the ones before it, in order, and
    ``new_tokens`` this stage's own; ``eval_sources`` are the domains scored on their held-out split at
    ``eval_seq_len`` tokens. ``tasks`` run at the stage's end (``task_limit`` items each) and, with
    ``tasks_every``, every that many steps inside it, with ``task_options`` (task -> shots, items). ``expectation`` is the parsed ``expect`` (None without
    one) and ``extend_steps`` the optimizer steps one ``extend`` adds (0 without). ``frozen`` is the stage's
    config as written in the plan (what ``run_state.json`` keeps to refuse later edits).
    """

    index: int
    name: str
    folder: Path
    config: PreTrainingConfig
    phases: list[Phase]
    max_steps: int
    sources: dict[str, str]
    weights: dict[str, float]
    own_sources: list[str]
    special_tokens: list[str]
    new_tokens: list[str]
    eval_sources: dict[str, str]
    eval_seq_len: int
    tasks: list[str]
    task_limit: int
    tasks_every: int | None
    expectation: Expectation | None
    extend_steps: int
    optimizer: str
    pause: bool
    merge: MergeSpec | None
    frozen: dict
    task_options: dict = field(default_factory=dict)  # task -> TaskOptions (shots, items)

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"


def resolve_stages(plan: PlanConfig, run_dir: Path, epoch_tokens: dict[str, int]) -> list[StagePlan]:
    """One :class:`StagePlan` per stage of ``plan``, with checkpoints under ``run_dir/stages/<n>-<name>``.

    ``epoch_tokens`` maps a source to its tokens per epoch; it is needed only for budgets in epochs."""
    resolved, tokens_so_far = [], []
    eval_seq_len = min(plan.training_config(0).max_seq_length, plan.model_context())
    for index, stage in enumerate(plan.stages):
        first_phase = stage_phases(stage, plan.training_config(index), 1)[0]
        max_steps = stage_steps(stage, first_phase.tokens_per_step, epoch_tokens)
        folder = Path(run_dir) / "stages" / f"{index + 1}-{stage.name}"
        evaluation = plan.stage_evaluation(index)
        config = plan.training_config(index, max_steps).model_copy(update={
            "out_dir": str(folder), "eval_interval": stage.overrides.get("eval_interval", evaluation.every),
            "eval_batches": evaluation.batches})
        expectation = parse_expect(stage.expect)[0] if stage.expect else None
        weights = stage_weights(plan, index)
        tokens_so_far = tokens_so_far + list(stage.special_tokens)
        resolved.append(StagePlan(
            index=index, name=stage.name, folder=folder, config=config,
            phases=stage_phases(stage, config, max_steps), max_steps=max_steps,
            sources={name: plan.sources[name] for name in weights}, weights=weights, own_sources=list(stage.data),
            special_tokens=tokens_so_far, new_tokens=list(stage.special_tokens),
            eval_sources={name: plan.sources[name] for name in evaluation.perplexity},
            eval_seq_len=eval_seq_len, tasks=list(evaluation.tasks), task_limit=evaluation.limit,
            tasks_every=evaluation.tasks_every, expectation=expectation,
            extend_steps=extension_steps(expectation, first_phase.tokens_per_step,
                                         sum(epoch_tokens.get(s, 0) for s in stage.data)),
            optimizer=stage.optimizer, pause=stage.pause, merge=stage.merge, frozen=stage.model_dump(by_alias=True),
            task_options=dict(evaluation.task_options)))
    return resolved


def extension_steps(expectation: Expectation | None, tokens_per_step: int, epoch_tokens: int) -> int:
    """Optimizer steps one extension adds: ``steps``, or ``tokens`` / ``epochs`` (of the stage's own sources,
    ``epoch_tokens`` per epoch) turned into steps at the stage's first tokens per step; 0 without ``extend``."""
    extend = expectation.extend if expectation else None
    if extend is None:
        return 0
    if extend.steps is not None:
        return extend.steps
    tokens = extend.tokens if extend.tokens is not None else extend.epochs * epoch_tokens
    return max(1, math.ceil(tokens / tokens_per_step))


def stage_steps(stage: StageConfig, tokens_per_step: int, epoch_tokens: dict[str, int]) -> int:
    """The budget in optimizer steps. ``epochs`` count passes over the stage's own sources (not replay)."""
    budget = stage.budget
    if budget.steps is not None:
        return budget.steps
    tokens = budget.tokens if budget.tokens is not None else budget.epochs * sum(epoch_tokens[s] for s in stage.data)
    return max(1, math.ceil(tokens / tokens_per_step))


def stage_phases(stage: StageConfig, config: PreTrainingConfig, max_steps: int) -> list[Phase]:
    """Curriculum points as phases. A point without ``micro_batch_size`` keeps tokens per step constant."""
    base_accum = config.gradient_accumulation_steps
    if not stage.curriculum:
        return [Phase(0, config.max_seq_length, config.micro_batch_size, base_accum)]
    first = stage.curriculum[0]
    tokens_per_step = first.seq_len * (first.micro_batch_size or config.micro_batch_size) * \
        (first.grad_accum_steps or base_accum)
    phases = []
    for point in stage.curriculum:
        accum = point.grad_accum_steps or base_accum
        micro = point.micro_batch_size or max(1, tokens_per_step // (point.seq_len * accum))
        at = int(point.at * max_steps) if point.at < 1 else int(point.at)
        phases.append(Phase(at, point.seq_len, micro, accum, point.lr_scale))
    return phases


def stage_weights(plan: PlanConfig, index: int) -> dict[str, float]:
    """Source → share of tokens for stage ``index``, replay included.

    Replay ``from`` names earlier stages (their own mixtures, renormalised) or sources; the replay fraction
    is split among them evenly and added to any weight the stage already gives that source.
    """
    stage = plan.stages[index]
    weights = dict(stage.data)
    if stage.replay:
        by_name = {s.name: s for s in plan.stages[:index]}
        share = stage.replay.fraction / len(stage.replay.from_)
        for name in stage.replay.from_:
            mixture = by_name[name].data if name in by_name else {name: 1.0}
            total = sum(mixture.values())
            for source, w in mixture.items():
                weights[source] = weights.get(source, 0.0) + share * w / total
    return weights
