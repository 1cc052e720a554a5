"""``PlanConfig``: an ordered list of stages, each with its data mixture, budget, LR and curriculum.

Checks that need the whole plan (weights summing to 1, replay from data an earlier stage used, a
curriculum point beyond the budget, seq_len above the model's context, special tokens declared twice)
run here, at the door, and report one line per problem with the field path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from syllabus.config.expect import parse_expect
from syllabus.config.load import describe_error
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.config.source import SourceSpec, as_source_spec

# Training fields the plan owns -> where a plan sets them. `defaults` and `overrides` may not set them: the
# plan's own value would silently win (a stage trains with the plan's `seed` + its index, whatever they say).
PLAN_OWNED = {"seed": "the top-level `seed` (stage i trains with seed + i)",
              "data_dir": "`sources`", "data_sources": "`sources`", "data_mix_weights": "`stages[].data`",
              "tokenizer": "`tokenizer.path`", "vocab_size": "`tokenizer.vocab_size`",
              "out_dir": "the run folder (`syllabus run --out`)", "checkpoint_dir": "the run folder (`syllabus run --out`)",
              "resume": "the run folder (running again continues it)", "max_steps": "`stages[].budget`",
              "learning_rate": "`stages[].lr.peak`", "min_learning_rate": "`stages[].lr.min`",
              "warmup_steps": "`stages[].lr.warmup`", "lr_schedule": "`stages[].lr.schedule`",
              "model_config_name": "`model.size`", "model": "`model.overrides`", "init_from": "`model.from`",
              "eval_batches": "`evaluation.batches` (or a stage's `evaluation.batches`)",
              **{f: f"`sources.<name>.{f}` (record options belong to each source)"
                 for f in ("format", "text_field", "template", "calculator", "languages", "loss_on")}}
# Set by the plan for `defaults` only; a stage's `overrides` may still set it.
DEFAULTS_OWNED = {"eval_interval": "`evaluation.every` (or a stage's `evaluation.every` / `overrides.eval_interval`)"}
RESERVED_TOKENS = {"<|endoftext|>", "<|pad|>"}
# Benchmark tasks `syllabus.evaluate` runs (checked here, at the door, without importing it).
BENCHMARK_TASKS = ("hellaswag", "arc", "arc_challenge", "mmlu", "gsm8k", "humaneval", "arithmetic")
LM_EVAL_PREFIX = "lm_eval:"  # lm_eval:<task> runs any lm-evaluation-harness task (evaluate/lm_eval_tasks.py)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TokenizerSpec(_Strict):
    """The plan's tokenizer: an existing ``tokenizer.json``, or a byte-level BPE trained once on the sources."""

    vocab_size: int = Field(8192, ge=258, description="size of the BPE vocabulary trained on the sources")
    train_on: list[str] | None = Field(None, description="sources to train on; default: all")
    path: str | None = Field(None, description="an existing tokenizer.json instead of training one")


class Budget(_Strict):
    """Exactly one of steps, tokens or epochs (of the stage's own data, not counting replay)."""

    steps: int | None = Field(None, ge=1, description="optimizer steps")
    tokens: float | None = Field(None, gt=0,
                                 description="training tokens (all ranks), turned into steps with the stage's tokens "
                                             "per step")
    epochs: float | None = Field(None, gt=0,
                                 description="passes over the stage's own sources (replay not counted), turned into "
                                             "steps")

    @model_validator(mode="after")
    def _one(self) -> "Budget":
        given = [k for k in ("steps", "tokens", "epochs") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of steps, tokens, epochs (got {', '.join(given) or 'none'})")
        return self


class LRSpec(_Strict):
    """A stage's learning rate: linear warmup to ``peak``, then ``schedule`` down to ``min`` by its last step."""

    peak: float = Field(6e-4, gt=0, description="peak learning rate, reached at the end of warmup")
    min: float | None = Field(None, ge=0, description="default: peak / 10")
    warmup: int = Field(100, ge=0, description="optimizer steps of linear warmup from 0 to peak")
    schedule: Literal["cosine", "constant", "wsd"] = Field("cosine",
                                        description="shape after warmup: cosine to min, constant, or wsd "
                                                    "(warmup-stable-decay)")


class CurriculumPoint(_Strict):
    """From ``at`` (a step, or a fraction of the stage when < 1) on: these shapes.

    Invariant: when ``micro_batch_size`` is not given it is chosen so tokens per step stay as configured.
    """

    at: float = Field(ge=0, description="first step of this phase, or a fraction of the stage's steps when below 1")
    seq_len: int = Field(ge=8, description="tokens per training sequence from this point on")
    micro_batch_size: int | None = Field(None, ge=1,
                                        description="sequences per micro-batch; default: keeps the first point's "
                                                    "tokens per step")
    grad_accum_steps: int | None = Field(None, ge=1,
                                         description="micro-batches per optimizer step; default: the stage's")
    lr_scale: float = Field(1.0, gt=0, description="multiplies the scheduled learning rate in this phase")


class ReplaySpec(_Strict):
    """Data of earlier stages mixed into this one, as a share of its tokens."""

    fraction: float = Field(gt=0, lt=1, description="share of the stage's tokens drawn from the replayed data")
    from_: list[str] = Field(alias="from", min_length=1, description="earlier stages or the sources they used")


class MergeSpec(_Strict):
    """Average the stage's last checkpoints at its end and keep the better of the average and the plain final."""

    last: int = Field(ge=2, description="how many of the newest checkpoints (spaced by save_interval) to average")
    choose: Literal["best", "merged", "final"] = Field(
        "best", description="best: the lower held-out loss wins; merged / final: that one, whatever the scores")
    by: Literal["stage_domains", "all_domains"] = Field(
        "stage_domains", description="held-out loss compared: mean over the stage's own sources, or over all scored")


class TaskOptions(_Strict):
    """One benchmark task's options: its exemplars and, for gsm8k, a file of the user's own items."""

    shots: int | None = Field(None, ge=0, description="exemplars in each prompt (default: hellaswag/arc 0, mmlu 5, "
                                                      "gsm8k 8); a gsm8k prompt too long for the model loses whole "
                                                      "exemplars, counted and logged, never cut")
    items: str | None = Field(None, min_length=1,
                              description="gsm8k only: a GSM8K-format JSONL file (question, answer ending in "
                                          "'#### N') scored instead of the published test set")


class StageEvaluation(_Strict):
    """A stage's own evaluation: added to the plan's (lists joined, numbers replaced), or instead of it."""

    tasks: list[str] = Field(default_factory=list, description="benchmark tasks of this stage")
    perplexity: list[str] = Field(default_factory=list, description="sources whose held-out split this stage scores")
    every: int | None = Field(None, ge=1, description="steps between evaluations (default: the plan's)")
    tasks_every: int | None = Field(None, ge=1, description="also run the tasks every N steps (default: the plan's)")
    limit: int | None = Field(None, ge=1, description="items per task (default: the plan's)")
    batches: int | None = Field(None, ge=1, description="held-out batches per domain (default: the plan's)")
    task_options: dict[str, TaskOptions] = Field(default_factory=dict,
                                                 description="task -> its options for this stage (replacing the "
                                                             "plan's for that task)")
    replace: bool = Field(False, description="true: this stage uses only what is given here")


class StageConfig(_Strict):
    """One stage: its data mixture (token shares), budget, LR, curriculum, replay and special tokens."""

    name: str = Field(min_length=1, description="the stage's name: its folder, its records and --pause-after use it")
    data: dict[str, float] = Field(min_length=1, description="source name -> weight (in tokens)")
    budget: Budget = Field(default_factory=lambda: Budget(steps=100),
                           description="how long the stage trains: exactly one of steps, tokens, epochs")
    lr: LRSpec = Field(default_factory=LRSpec, description="the stage's learning-rate schedule")
    curriculum: list[CurriculumPoint] = Field(default_factory=list,
                                              description="sequence-length / batch-shape phases, in order of at")
    replay: ReplaySpec | None = Field(None, description="mix in data of earlier stages to keep what they taught")
    special_tokens: list[str] = Field(default_factory=list,
                                      description="tokens added to the tokenizer at this stage (the embedding grows in "
                                                  "place)")
    overrides: dict = Field(default_factory=dict, description="any training field, e.g. weight_decay")
    optimizer: Literal["fresh", "continue"] = Field("fresh", description="fresh AdamW state, or carry it over")
    expect: dict = Field(default_factory=dict, description='targets, e.g. {ppl: {wiki: "< 20"}, gsm8k: "> 0.4"}, '
                         'and on_miss: continue | pause | extend | stop, extend: {steps|tokens|epochs: X, times: K}')
    pause: bool = Field(False, description="stop cleanly after this stage's evaluation (run again to continue)")
    merge: MergeSpec | None = Field(None, description="checkpoint averaging at the stage's end")
    evaluation: StageEvaluation | None = Field(None, description="this stage's tasks/perplexity/every/limit")
    mixture_from: str | None = Field(None, description="where the stage's mixture came from (set by `syllabus mix "
                                                       "search --write`); shown in the report")


class EvaluationSpec(_Strict):
    """Validation losses every ``every`` steps and, at each stage's end, perplexity and benchmark tasks."""

    every: int = Field(200, ge=1, description="steps between evaluations within a stage")
    perplexity: list[str] = Field(default_factory=list, description="sources whose held-out split is scored")
    tasks: list[str] = Field(default_factory=list, description="benchmark tasks run at each stage's end")
    tasks_every: int | None = Field(None, ge=1, description="also run the tasks every N steps inside a stage")
    limit: int = Field(20, ge=1, description="items per task between stages")
    batches: int = Field(8, ge=1, description="held-out batches per domain")
    task_options: dict[str, TaskOptions] = Field(default_factory=dict,
                                                 description="task -> its options, e.g. {gsm8k: {shots: 4, items: "
                                                             "data/my-gsm8k/test.jsonl}}")


class ForgettingSpec(_Strict):
    """The forgetting gate: fires when a watched domain's perplexity exceeds ``threshold`` × its value at the end
    of its stage."""

    watch: list[str] | str = Field(default_factory=list,
                                   description="domains (sources) whose perplexity is watched once their stage has "
                                               "ended")
    threshold: float = Field(1.5, gt=1.0, description="val perplexity ratio against the value at its stage's end")
    action: Literal["warn", "reduce_lr", "replay", "stop"] = Field("warn",
                                        description="on firing: warn, reduce_lr, replay (raise the domain's share) or "
                                                    "stop the run")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="reduce_lr: multiply the LR by this")
    replay_step: float = Field(0.1, gt=0, lt=1, description="replay: raise that domain's share by this")

    @property
    def domains(self) -> list[str]:
        return [self.watch] if isinstance(self.watch, str) else list(self.watch)


class ModelSpec(_Strict):
    """The model's shape: a size preset plus any ``ModelConfig`` field in ``overrides``; or ``from``: a Hugging Face
    checkpoint whose config, weights and tokenizer start the first stage (docs/continued-pretraining.md)."""

    size: Literal["tiny", "small", "base", "large"] = Field("tiny", description="size preset")
    overrides: dict = Field(default_factory=dict, description="any ModelConfig field")
    from_: str | None = Field(None, alias="from", description="a Hugging Face model folder or "
                              "hf:owner/name[@revision]: the first stage starts from its weights and tokenizer")


class PlanConfig(_Strict):
    """A multi-stage plan: sources, model, tokenizer, the stages in order, evaluation and the forgetting gate.

    Checked whole at construction: one ``ValidationError`` listing every problem, one line per field path
    (``load_config`` turns it into a ``ConfigError``). ``training_config(i, steps)`` resolves stage ``i`` into
    the ``PreTrainingConfig`` it trains with (defaults, then the stage's own settings and overrides). Every key
    is listed in ``docs/plan.md``."""

    name: str = Field(min_length=1, description="the plan's name: the default run folder is runs/<name>")
    sources: dict[str, str | SourceSpec] = Field(
        min_length=1, description="source name -> path (folder, files, glob, shards, hf:...) or a mapping with "
                                  "path and record options (format, template, calculator, steps, languages, ...)")
    model: ModelSpec = Field(default_factory=ModelSpec, description="the model's shape: a preset plus overrides")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec,
                                     description="the tokenizer: an existing file, or trained once on the sources")
    defaults: dict = Field(default_factory=dict, description="training fields for every stage")
    stages: list[StageConfig] = Field(min_length=1,
                                      description="the stages, trained in this order, each from the previous one's "
                                                  "final weights")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec,
                                       description="evaluations within and between stages")
    forgetting: ForgettingSpec = Field(default_factory=ForgettingSpec,
                                       description="the forgetting gate: what to watch and what to do when it fires")
    seed: int = Field(1337, ge=0, description="seeds the model initialisation and the data order of every stage")

    @model_validator(mode="after")
    def _whole_plan(self) -> "PlanConfig":
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def problems(self) -> list[str]:
        owned = {**PLAN_OWNED, **DEFAULTS_OWNED}
        found = [f"defaults.{key}: set by the plan itself, in {owned[key]}; defaults may not set it" if key in owned
                 else f"defaults.{key}: not a training field" for key in self.defaults
                 if key in owned or key not in PreTrainingConfig.model_fields]
        if self.model.from_ is not None:
            shape = [f"model.{k}" for k in ("size",) if k in self.model.model_fields_set]
            shape += [f"model.overrides.{k}" for k in self.model.overrides]
            if shape:
                found.append(f"model.from: the shape comes from the checkpoint's config.json; drop {', '.join(shape)}")
            if self.tokenizer.model_fields_set:
                found.append(f"tokenizer: model.from brings its own tokenizer.json; drop "
                             f"{', '.join('tokenizer.' + k for k in sorted(self.tokenizer.model_fields_set))}")
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
            if stage.merge:
                keep = {**self.defaults, **stage.overrides}.get("keep_last_n_checkpoints",
                                                                PreTrainingConfig.model_fields["keep_last_n_checkpoints"].default)
                if stage.merge.last > keep:
                    found.append(f"{at}.merge.last: {stage.merge.last} checkpoints cannot be averaged when only "
                                 f"keep_last_n_checkpoints={keep} are kept")
                if not self.stage_evaluation(i).perplexity:
                    found.append(f"{at}.merge: needs evaluation.perplexity domains to compare the average with the final")
            seen_stages[stage.name] = set(stage.data)
            used_sources |= set(stage.data)
        evaluations = [("evaluation", self.evaluation)] + [(f"stages.{i}.evaluation", s.evaluation)
                                                           for i, s in enumerate(self.stages) if s.evaluation]
        for where, spec in evaluations:
            for task in spec.tasks:
                if task not in BENCHMARK_TASKS and not (task.startswith(LM_EVAL_PREFIX) and len(task) > 8):
                    found.append(f"{where}.tasks: '{task}' is not a task (tasks: {', '.join(BENCHMARK_TASKS)}, "
                                 f"or lm_eval:<lm-eval task>)")
            for task, options in spec.task_options.items():
                if task not in BENCHMARK_TASKS:
                    found.append(f"{where}.task_options.{task}: not a benchmark task ({', '.join(BENCHMARK_TASKS)})")
                elif options.items is not None and task != "gsm8k":
                    found.append(f"{where}.task_options.{task}.items: only gsm8k reads its items from a file")
            for name in spec.perplexity:
                if name not in known:
                    found.append(f"{where}.perplexity: '{name}' is not a source (sources: {', '.join(self.sources)})")
        for i, stage in enumerate(self.stages):
            found += parse_expect(stage.expect, f"stages.{i}.expect")[1]
        for name in self.tokenizer.train_on or []:
            if name in known and _is_prepared(as_source_spec(self.sources[name]).path):
                found.append(f"tokenizer.train_on: '{name}' is prepared token shards, not text; a plan over shards "
                             f"uses the tokenizer they were prepared with (drop tokenizer.train_on/vocab_size)")
        for field, names in (("forgetting.watch", self.forgetting.domains),
                             ("tokenizer.train_on", self.tokenizer.train_on or [])):
            for name in names:
                if name not in known:
                    found.append(f"{field}: '{name}' is not a source (sources: {', '.join(self.sources)})")
        return found

    def source_spec(self, name: str) -> SourceSpec:
        """Source ``name`` as a :class:`SourceSpec` (a path string gets the default options)."""
        return as_source_spec(self.sources[name])

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

        fields = {"tasks": joined("tasks"), "perplexity": joined("perplexity"),
                  "task_options": own.task_options if own.replace else {**base.task_options, **own.task_options}}
        for name in ("every", "tasks_every", "limit", "batches"):
            value = getattr(own, name)
            fields[name] = value if value is not None else getattr(base, name)
        return EvaluationSpec(**fields)

    def training_config(self, index: int, max_steps: int = 1) -> PreTrainingConfig:
        """Stage ``index``'s training fields: defaults, then the stage's overrides, LR and budget in steps."""
        stage = self.stages[index]
        lr = stage.lr
        shape = {"init_from": self.model.from_} if self.model.from_ is not None else \
            {"model_config_name": self.model.size, "model": self.model.overrides}
        fields = {**self.defaults, **stage.overrides, **shape, "max_steps": max_steps, "learning_rate": lr.peak,
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
                found.append(f"{at}.overrides.{key}: set by the plan itself, in {PLAN_OWNED[key]}; overrides may not "
                             f"set it")
            elif key == "max_seq_length" and stage.curriculum:
                found.append(f"{at}.overrides.max_seq_length: set by this stage's curriculum (its points' seq_len)")
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

        if self.model.from_ is not None:  # a local folder's config.json; a hub id is checked once downloaded
            config = Path(self.model.from_) / "config.json"
            if not self.model.from_.startswith("hf:") and config.is_file():
                import json

                return int(json.loads(config.read_text()).get("max_position_embeddings", 1 << 30))
            return 1 << 30
        return self.model.overrides.get("max_position_embeddings", PRESETS[self.model.size]["max_position_embeddings"])


def _is_prepared(path: str) -> bool:
    """A folder written by ``syllabus prepare`` (``header.json`` in it or in its ``train/``)."""
    return not path.startswith("hf:") and ((Path(path) / "header.json").is_file()
                                           or (Path(path) / "train" / "header.json").is_file())
