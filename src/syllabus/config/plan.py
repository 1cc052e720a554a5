"""``PlanConfig``: an ordered list of stages, each with its data mixture, budget, LR and curriculum.

Checks that need the whole plan (weights summing to 1, replay from data an earlier stage used, a
curriculum point beyond the budget, seq_len above the model's context, special tokens declared twice)
run here, at the door, and report one line per problem with the field path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from syllabus.config.expect import parse_expect
from syllabus.config.load import describe_error
from syllabus.config.pretrain import PreTrainingConfig

# Fields a stage may not set through `overrides`: the plan owns them.
PLAN_OWNED = {"data_dir", "data_sources", "data_mix_weights", "tokenizer", "vocab_size", "out_dir", "checkpoint_dir",
              "resume", "max_steps", "learning_rate", "min_learning_rate", "warmup_steps", "lr_schedule",
              "model_config_name", "model"}
RESERVED_TOKENS = {"<|endoftext|>", "<|pad|>"}
# Benchmark tasks `syllabus.evaluate` runs (checked here, at the door, without importing it).
BENCHMARK_TASKS = ("hellaswag", "arc", "arc_challenge", "mmlu", "gsm8k", "humaneval", "arithmetic")
LM_EVAL_PREFIX = "lm_eval:"  # lm_eval:<task> runs any lm-evaluation-harness task (evaluate/lm_eval_tasks.py)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TokenizerSpec(_Strict):
    vocab_size: int = Field(8192, ge=258)
    train_on: list[str] | None = Field(None, description="sources to train on; default: all")
    path: str | None = Field(None, description="an existing tokenizer.json instead of training one")


class Budget(_Strict):
    """Exactly one of steps, tokens or epochs (of the stage's own data, not counting replay)."""

    steps: int | None = Field(None, ge=1)
    tokens: float | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> "Budget":
        given = [k for k in ("steps", "tokens", "epochs") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of steps, tokens, epochs (got {', '.join(given) or 'none'})")
        return self


class LRSpec(_Strict):
    peak: float = Field(6e-4, gt=0)
    min: float | None = Field(None, ge=0, description="default: peak / 10")
    warmup: int = Field(100, ge=0)
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"


class CurriculumPoint(_Strict):
    """From ``at`` (a step, or a fraction of the stage when < 1) on: these shapes.

    Invariant: when ``micro_batch_size`` is not given it is chosen so tokens per step stay as configured.
    """

    at: float = Field(ge=0)
    seq_len: int = Field(ge=8)
    micro_batch_size: int | None = Field(None, ge=1)
    grad_accum_steps: int | None = Field(None, ge=1)
    lr_scale: float = Field(1.0, gt=0)


class ReplaySpec(_Strict):
    fraction: float = Field(gt=0, lt=1)
    from_: list[str] = Field(alias="from", min_length=1, description="earlier stages or the sources they used")


class StageEvaluation(_Strict):
    """A stage's own evaluation: added to the plan's (lists joined, numbers replaced), or instead of it."""

    tasks: list[str] = Field(default_factory=list)
    perplexity: list[str] = Field(default_factory=list)
    every: int | None = Field(None, ge=1)
    tasks_every: int | None = Field(None, ge=1)
    limit: int | None = Field(None, ge=1)
    batches: int | None = Field(None, ge=1)
    replace: bool = Field(False, description="true: this stage uses only what is given here")


class StageConfig(_Strict):
    name: str = Field(min_length=1)
    data: dict[str, float] = Field(min_length=1, description="source name -> weight (in tokens)")
    budget: Budget = Field(default_factory=lambda: Budget(steps=100))
    lr: LRSpec = Field(default_factory=LRSpec)
    curriculum: list[CurriculumPoint] = Field(default_factory=list)
    replay: ReplaySpec | None = None
    special_tokens: list[str] = Field(default_factory=list)
    overrides: dict = Field(default_factory=dict, description="any training field, e.g. weight_decay")
    optimizer: Literal["fresh", "continue"] = Field("fresh", description="fresh AdamW state, or carry it over")
    expect: dict = Field(default_factory=dict, description='targets, e.g. {ppl: {wiki: "< 20"}, gsm8k: "> 0.4"}, '
                         'and on_miss: continue | pause | extend | stop, extend: {steps|tokens|epochs: X, times: K}')
    pause: bool = False
    evaluation: StageEvaluation | None = Field(None, description="this stage's tasks/perplexity/every/limit")


class EvaluationSpec(_Strict):
    every: int = Field(200, ge=1, description="steps between evaluations within a stage")
    perplexity: list[str] = Field(default_factory=list, description="sources whose held-out split is scored")
    tasks: list[str] = Field(default_factory=list)
    tasks_every: int | None = Field(None, ge=1, description="also run the tasks every N steps inside a stage")
    limit: int = Field(20, ge=1, description="items per task between stages")
    batches: int = Field(8, ge=1, description="held-out batches per domain")


class ForgettingSpec(_Strict):
    watch: list[str] | str = Field(default_factory=list)
    threshold: float = Field(1.5, gt=1.0, description="val perplexity ratio against the value at its stage's end")
    action: Literal["warn", "reduce_lr", "replay", "stop"] = "warn"
    lr_factor: float = Field(0.5, gt=0, lt=1, description="reduce_lr: multiply the LR by this")
    replay_step: float = Field(0.1, gt=0, lt=1, description="replay: raise that domain's share by this")

    @property
    def domains(self) -> list[str]:
        return [self.watch] if isinstance(self.watch, str) else list(self.watch)


class ModelSpec(_Strict):
    size: Literal["tiny", "small", "base", "large"] = "tiny"
    overrides: dict = Field(default_factory=dict, description="any ModelConfig field")


class PlanConfig(_Strict):
    name: str = Field(min_length=1)
    sources: dict[str, str] = Field(min_length=1, description="source name -> path (folder, files, glob, shards)")
    model: ModelSpec = Field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    defaults: dict = Field(default_factory=dict, description="training fields for every stage")
    stages: list[StageConfig] = Field(min_length=1)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    forgetting: ForgettingSpec = Field(default_factory=ForgettingSpec)
    seed: int = Field(1337, ge=0)

    @model_validator(mode="after")
    def _whole_plan(self) -> "PlanConfig":
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def problems(self) -> list[str]:
        found = [f"defaults.{key}: not a training field a plan may set (the plan sets budget, lr, model, sources)"
                 for key in self.defaults if key in PLAN_OWNED or key not in PreTrainingConfig.model_fields]
        if found:
            return found
        known = set(self.sources)
        seen_stages: dict[str, set[str]] = {}
        used_sources: set[str] = set()
        tokens_so_far = set(RESERVED_TOKENS)
        for i, stage in enumerate(self.stages):
            at = f"stages.{i}"
            if stage.name in seen_stages:
                found.append(f"{at}.name: '{stage.name}' is used by an earlier stage")
            for name in stage.data:
                if name not in known:
                    found.append(f"{at}.data.{name}: not a source (sources: {', '.join(self.sources)})")
            total = sum(stage.data.values()) + (stage.replay.fraction if stage.replay else 0.0)
            if abs(total - 1.0) > 1e-6:
                found.append(f"{at}.data: weights{' plus replay.fraction' if stage.replay else ''} must sum to 1, "
                             f"got {total:g}")
            if stage.replay:
                for name in stage.replay.from_:
                    if name not in seen_stages and name not in used_sources:
                        found.append(f"{at}.replay.from: '{name}' is neither an earlier stage nor a source one used")
            found += self._stage_training_problems(at, stage)
            for token in stage.special_tokens:
                if token in tokens_so_far:
                    found.append(f"{at}.special_tokens: '{token}' already exists")
                tokens_so_far.add(token)
            seen_stages[stage.name] = set(stage.data)
            used_sources |= set(stage.data)
        evaluations = [("evaluation", self.evaluation)] + [(f"stages.{i}.evaluation", s.evaluation)
                                                           for i, s in enumerate(self.stages) if s.evaluation]
        for where, spec in evaluations:
            for task in spec.tasks:
                if task not in BENCHMARK_TASKS and not (task.startswith(LM_EVAL_PREFIX) and len(task) > 8):
                    found.append(f"{where}.tasks: '{task}' is not a task (tasks: {', '.join(BENCHMARK_TASKS)}, "
                                 f"or lm_eval:<lm-eval task>)")
            for name in spec.perplexity:
                if name not in known:
                    found.append(f"{where}.perplexity: '{name}' is not a source (sources: {', '.join(self.sources)})")
        for i, stage in enumerate(self.stages):
            found += parse_expect(stage.expect, f"stages.{i}.expect")[1]
        for field, names in (("forgetting.watch", self.forgetting.domains),
                             ("tokenizer.train_on", self.tokenizer.train_on or [])):
            for name in names:
                if name not in known:
                    found.append(f"{field}: '{name}' is not a source (sources: {', '.join(self.sources)})")
        return found

    def stage_evaluation(self, index: int) -> EvaluationSpec:
        """Stage ``index``'s evaluation: the plan's, extended by the stage's own (lists joined without repeats,
        numbers given by the stage replace the plan's), or the stage's alone with ``replace: true``."""
        own = self.stages[index].evaluation
        if own is None:
            return self.evaluation
        base = EvaluationSpec() if own.replace else self.evaluation
        def joined(name: str) -> list[str]:
            mine = getattr(own, name)
            return mine if own.replace else list(dict.fromkeys(getattr(base, name) + mine))

        fields = {"tasks": joined("tasks"), "perplexity": joined("perplexity")}
        for name in ("every", "tasks_every", "limit", "batches"):
            value = getattr(own, name)
            fields[name] = value if value is not None else getattr(base, name)
        return EvaluationSpec(**fields)

    def training_config(self, index: int, max_steps: int = 1) -> PreTrainingConfig:
        """Stage ``index``'s training fields: defaults, then the stage's overrides, LR and budget in steps."""
        stage = self.stages[index]
        lr = stage.lr
        fields = {**self.defaults, **stage.overrides, "model_config_name": self.model.size,
                  "model": self.model.overrides, "max_steps": max_steps, "learning_rate": lr.peak,
                  "min_learning_rate": lr.peak / 10 if lr.min is None else lr.min,
                  "warmup_steps": min(lr.warmup, max(0, max_steps - 1)), "lr_schedule": lr.schedule,
                  "seed": self.seed + index}
        if stage.curriculum:
            fields["max_seq_length"] = max(p.seq_len for p in stage.curriculum)
        return PreTrainingConfig.model_validate(fields)

    def _stage_training_problems(self, at: str, stage: StageConfig) -> list[str]:
        found = []
        for key in stage.overrides:
            if key in PLAN_OWNED:
                found.append(f"{at}.overrides.{key}: set by the plan itself (budget, lr, model, sources)")
            elif key not in PreTrainingConfig.model_fields:
                found.append(f"{at}.overrides.{key}: not a training field")
        context = self.model_context()
        points = stage.curriculum
        for j, point in enumerate(points):
            if point.seq_len > context:
                found.append(f"{at}.curriculum.{j}.seq_len: {point.seq_len} exceeds the model's context ({context})")
            if stage.budget.steps is not None and point.at >= 1 and point.at >= stage.budget.steps:
                found.append(f"{at}.curriculum.{j}.at: step {point.at:g} is beyond the budget of "
                             f"{stage.budget.steps} steps")
            if j and point.at <= points[j - 1].at:
                found.append(f"{at}.curriculum.{j}.at: points must be in increasing order")
        if points and points[0].at != 0:
            found.append(f"{at}.curriculum.0.at: the first point must be at 0")
        if not found:
            try:
                self.training_config(self.stages.index(stage))
            except ValidationError as err:
                found += [f"{at}.{describe_error(PreTrainingConfig, e)}" for e in err.errors()]
        return found

    def model_context(self) -> int:
        from syllabus.config.model import PRESETS

        return self.model.overrides.get("max_position_embeddings", PRESETS[self.model.size]["max_position_embeddings"])
