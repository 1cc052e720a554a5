"""``run_plan``: train through every stage of a plan, each from the last, evaluating between them.

The only place that knows about more than one stage. The plan is resolved once at the door into one
:class:`~syllabus.plan.stages.StagePlan` per stage; this file then reads top to bottom: for each stage,
its tokenizer and model (``handover``), its batches, a ``Trainer``, the end-of-stage evaluation, the
run state. Running again on the same folder continues exactly: a finished stage is skipped, a started
one resumes from its newest valid checkpoint, and the next one starts from the previous stage's final
weights.

Under torchrun every rank runs this code. Files of the run folder have one owner, the main rank
(``run_state.json``, ``plan.yaml``, ``tokenizer.json``, metrics, evaluations, the report); checkpoints keep
their own rule (main rank, or every rank's shards under FSDP2). Evaluation runs on every rank (an FSDP2
forward needs them all), and what is decided from it (results, reference perplexities, the forgetting
gate's action) is rank 0's, broadcast, so ranks never disagree about the mixture.
"""

from __future__ import annotations

import gc
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

from syllabus.config.errors import ConfigError
from syllabus.config.plan import PlanConfig
from syllabus.data import epoch_tokens, iter_eval_batches, load_tokenizer, open_batches
from syllabus.plan.decisions import decide, decision_event, missed_targets
from syllabus.plan.describe import describe_plan
from syllabus.plan.door import check_plan_data
from syllabus.plan.forgetting import ForgettingGate
from syllabus.plan.handover import carry_optimizer, stage_model, stage_tokenizer
from syllabus.plan.merge import merge_at_stage_end
from syllabus.plan.numbers import as_number
from syllabus.plan.run_state import RunState
from syllabus.plan.stage_tasks import StageTasks
from syllabus.plan.stages import StagePlan, resolve_stages
from syllabus.plan.starting_point import resolve_starting_point
from syllabus.train import checkpoint as ckpt
from syllabus.train.distributed import DistContext
from syllabus.train.metrics import MetricsLog, NullLog
from syllabus.train.run_lock import RunLock
from syllabus.train.stops import RunHalted, StopRequest
from syllabus.train.trainer import Trainer

log = logging.getLogger("syllabus")

BASE_TOKENIZER = "tokenizer-base.json"  # the run's tokenizer before any stage added special tokens


def run_plan(plan: PlanConfig, run_dir: str | Path, *, pause_after: str | None = None) -> dict:
    """Train every stage of ``plan`` in ``run_dir`` (created if missing), continuing what is there.

    Returns a summary: ``status`` (``finished``, ``paused`` or ``stopped``), ``run_dir``, and ``stage`` (where
    it paused or stopped) or ``report`` (the report's path). Under torchrun (``WORLD_SIZE`` > 1) it joins the
    process group, trains with the plan's ``strategy`` and destroys the group on the way out.

    Side effects: installs SIGINT/SIGTERM handlers while training (a signal saves and returns ``stopped``),
    holds the run folder's lock, writes the run folder. Raises ``ConfigError`` for a bad ``pause_after``, an
    edit to a started stage or unusable data (missing sources and perplexity domains without held-out rows are
    refused before anything is written, ``plan.door``); ``CheckpointError`` when a previous stage's final is missing;
    ``RunHalted`` when a stage misses its ``expect`` targets with ``on_miss: stop`` (docs/evaluation.md).
    """
    run_dir = Path(run_dir)
    if pause_after is not None and pause_after not in {s.name for s in plan.stages}:
        raise ConfigError(f"--pause-after: '{pause_after}' is not a stage ({', '.join(s.name for s in plan.stages)})")
    held_out = check_plan_data(plan)  # the data first: before a tokenizer, a warning or a file
    defaults = plan.training_config(0)
    dist = DistContext.from_env(defaults.device, defaults.strategy, defaults.dist_timeout_seconds)
    try:
        with StopRequest() as stop, RunLock(run_dir, rank=dist.rank):
            return _run_stages(plan, run_dir, pause_after, dist, stop, held_out)
    finally:
        dist.close()


def _run_stages(plan: PlanConfig, run_dir: Path, pause_after: str | None, dist: DistContext,
                stop: StopRequest, held_out: dict) -> dict:
    state = RunState.load(run_dir)
    state.check_frozen([s.model_dump(by_alias=True) for s in plan.stages])  # refuses edits; admits new weights
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "plan.yaml").write_text(yaml.safe_dump(plan.model_dump(by_alias=True), sort_keys=False))
    plan = resolve_starting_point(plan, dist)  # model.from: a checked local folder, its chat template
    base_tokenizer = plan_tokenizer(plan, run_dir, dist)
    epochs = {name: epoch_tokens(path, base_tokenizer) for name, path in plan.sources.items()
              if any((s.budget.epochs or (s.expect.get("extend") or {}).get("epochs")) and name in s.data
                     for s in plan.stages)}
    stages = resolve_stages(plan, run_dir, epochs)
    if dist.is_main:
        print(describe_plan(plan, stages, epochs, held_out))
    defaults = stages[0].config
    metrics = MetricsLog(run_dir, use_tensorboard=defaults.use_tensorboard, use_wandb=defaults.use_wandb,
                         wandb_project=defaults.wandb_project, wandb_mode=defaults.wandb_mode,
                         run_name=plan.name) if dist.is_main else NullLog()
    evals = MetricsLog(run_dir, filename="evals.jsonl") if dist.is_main else NullLog()
    run = _Run(plan, run_dir, state, base_tokenizer, dist, stop, metrics, evals)
    try:
        for stage in stages:
            if stage.name in state.completed:
                continue
            state.started[stage.name] = stage.frozen
            _save_state(state, run_dir, dist)
            outcome = _run_stage(run, stage, stages[stage.index - 1] if stage.index else None, len(stages))
            _release_stage_memory(dist)
            if outcome == "paused_on_miss":
                state.completed.append(stage.name)
                _save_state(state, run_dir, dist)
                _write_report(plan, run_dir, state, dist)
                log.warning("paused after stage '%s': its expectations were missed (on_miss: pause)", stage.name)
                return {"status": "paused", "stage": stage.name, "run_dir": str(run_dir)}
            if outcome != "finished":
                return {"status": outcome, "stage": stage.name, "run_dir": str(run_dir)}
            state.completed.append(stage.name)
            _save_state(state, run_dir, dist)
            if stage.pause or pause_after == stage.name:
                _write_report(plan, run_dir, state, dist)
                log.info("paused after stage '%s' as asked; edit later stages if you like, then run again",
                         stage.name)
                return {"status": "paused", "stage": stage.name, "run_dir": str(run_dir)}
        report = _write_report(plan, run_dir, state, dist)
        return {"status": "finished", "run_dir": str(run_dir), "report": str(report)}
    finally:
        metrics.close()
        evals.close()


def _release_stage_memory(dist: DistContext) -> None:
    """The finished stage's trainer, model and optimizer are unreachable once ``_run_stage`` returns: collect what
    only the cycle collector frees (FSDP's and compile's internal cycles) and hand the CUDA blocks they held back
    to the driver, before the next stage builds its own."""
    gc.collect()
    if dist.device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class _Run:
    """What every stage of one run shares."""

    plan: PlanConfig
    run_dir: Path
    state: RunState
    base_tokenizer: object
    dist: DistContext
    stop: StopRequest
    metrics: MetricsLog | NullLog
    evals: MetricsLog | NullLog


def _run_stage(run: _Run, stage: StagePlan, previous: StagePlan | None, n_stages: int) -> str:
    dist, metrics = run.dist, run.metrics
    # Extensions already decided survive a restart: the stage is sized from run_state.json.
    config = stage.config.model_copy(update={
        "max_steps": stage.max_steps + run.state.extensions.get(stage.name, 0) * stage.extend_steps})
    tokenizer, new_ids = stage_tokenizer(run.base_tokenizer, stage)
    resume_from = ckpt.latest_valid_checkpoint(stage.checkpoints)
    torch.manual_seed(config.seed)  # the same start whether this process ran the previous stage or not
    model = stage_model(stage, previous, tokenizer, new_ids, resume_from, dist)
    batches = open_batches(stage.sources, stage.weights, tokenizer, seed=config.seed, rank=dist.rank,
                           world_size=dist.world_size, doc_attention=config.doc_attention,
                           num_workers=config.num_workers, packed=config.packing)
    eval_seq = min(stage.eval_seq_len, model.config.max_position_embeddings)
    eval_batches = {d: (lambda path=path: iter_eval_batches(path, tokenizer, seq_len=eval_seq,
                                                            batch_size=config.micro_batch_size,
                                                            max_batches=config.eval_batches))
                    for d, path in stage.eval_sources.items()}
    gate = ForgettingGate(run.plan.forgetting, run.state.reference_ppl, stage.weights, metrics)
    hooks = [StageTasks(stage.tasks, stage.tasks_every, stage.task_limit, stage.index,
                        run.evals if dist.is_main else None, metrics if dist.is_main else None,
                        task_arguments(stage.task_options))] \
        if stage.tasks_every and stage.tasks else []
    # stage.phases stay as planned: curriculum points given as fractions do not move when the stage is extended.
    trainer = Trainer(config, model, tokenizer, batches, out_dir=run.run_dir, checkpoint_dir=stage.checkpoints,
                      eval_batches=eval_batches, phases=stage.phases, stage=stage.name, dist=dist, metrics=metrics,
                      callbacks=[gate], extra_state=gate.state_dict, load_extra_state=gate.load_state_dict,
                      stop=run.stop, step_hooks=hooks)
    if resume_from is not None:
        planned_then = trainer.restore(resume_from).get("planned", stage.weights)
        if planned_then != stage.weights:
            _reweight(run, stage, trainer, gate, planned_then)
    elif stage.optimizer == "continue" and previous is not None:
        carry_optimizer(trainer, previous)
    run.state.precision[stage.name] = trainer.precision.to_dict()  # as resolved (on resume: as kept)
    run.state.kernels[stage.name] = trainer.kernels.to_dict()
    _save_state(run.state, run.run_dir, dist)
    log.info("stage %d/%d '%s': %d steps", stage.index + 1, n_stages, stage.name, config.max_steps)
    if resume_from is None:
        metrics.log({"step": 0, "stage": stage.name, "event": "stage_start", "new_token_ids": new_ids,
                     **getattr(model, "init_record", {})})
    while True:
        result = trainer.train()
        if result.stopped_by is not None:
            log.warning("stage '%s' stopped at step %d by %s; run again to continue", stage.name, result.step,
                        result.stopped_by)
            return "stopped"
        results = dist.broadcast_object(_end_of_stage_evaluation(stage, trainer, tokenizer, result.last_val))
        if stage.expectation is None:
            decision = None
            break
        # Rank 0 decides from rank 0's results (already broadcast): every rank takes the same branch.
        missed = missed_targets(stage.expectation, results)
        decision = decide(stage.expectation, missed, run.state.extensions.get(stage.name, 0))
        event = decision_event(stage.name, result.step, decision, missed)
        if decision == "extend":
            event.update(extension=run.state.extensions.get(stage.name, 0) + 1, times=stage.expectation.extend.times,
                         added_steps=stage.extend_steps, max_steps=trainer.config.max_steps + stage.extend_steps)
        elif decision == "continue_after_extensions":
            event["times"] = stage.expectation.extend.times
        run.state.decisions.append(event)
        metrics.log(event)
        if decision != "extend":
            break
        # Saved before the extension trains, so a restart sizes the stage the same way.
        run.state.extensions[stage.name] = event["extension"]
        _save_state(run.state, run.run_dir, dist)
        run.evals.log({"stage": stage.name, "stage_index": stage.index, "step": result.step,
                       "tokens_seen": result.tokens_seen, "kind": "before_extension", **results})
        log.warning("stage '%s' missed %s; extending it by %d steps (%d of %d)", stage.name, _describe_missed(missed),
                    stage.extend_steps, event["extension"], stage.expectation.extend.times)
        # The LR schedule is re-planned for the new end: lr_at(step, total = the extended budget).
        trainer.config = trainer.config.model_copy(update={"max_steps": event["max_steps"]})
    if stage.merge is not None:  # once the stage is over (after any extension): the average or the plain final
        merged_val = merge_at_stage_end(stage, trainer, result.last_val,
                                        lambda model: _task_scores(stage, model, tokenizer, trainer.autocast_dtype),
                                        metrics, run.evals)
        if merged_val is not result.last_val:
            results = dist.broadcast_object(_end_of_stage_evaluation(stage, trainer, tokenizer, merged_val))
    run.state.results[stage.name] = results
    _keep_stage_tokenizer(run, tokenizer)
    for domain in stage.own_sources:
        if as_number(results.get(f"ppl/{domain}")) is not None:  # a domain not measured sets no reference
            run.state.reference_ppl[domain] = results[f"ppl/{domain}"]
    run.evals.log({"stage": stage.name, "stage_index": stage.index, "step": result.step,
               "tokens_seen": result.tokens_seen, **results})
    metrics.log({"step": result.step, "stage": stage.name, "event": "stage_end", **results})
    if decision == "stop":
        _save_state(run.state, run.run_dir, dist)
        _write_report(run.plan, run.run_dir, run.state, dist)
        raise RunHalted(f"stage '{stage.name}' missed its expectations ({_describe_missed(missed)}); on_miss: stop. "
                        f"Its final checkpoint is kept; see {run.run_dir / 'report.md'}")
    return "paused_on_miss" if decision == "pause" else "finished"


def _describe_missed(missed: dict) -> str:
    return ", ".join(f"{k} = {'not measured' if v is None else f'{v:.4g}'}" for k, v in missed.items())


def _reweight(run: _Run, stage: StagePlan, trainer: Trainer, gate: ForgettingGate, before: dict) -> None:
    """Re-weight on resume: the user edited this running stage's weights. Every source keeps its stream
    position (nothing skipped or seen twice); the new target shares apply from this step on; LR schedule and
    budget are unchanged. Recorded as an ``event: reweight`` in ``metrics.jsonl`` and in ``run_state.json``."""
    mix = trainer.batches.mix_report()
    trainer.batches.set_weights(stage.weights)
    gate.weights = dict(stage.weights)
    event = {"step": trainer.step, "stage": stage.name, "event": "reweight", "planned_before": before,
             "planned_after": dict(stage.weights), "tokens_before": {s: row["tokens"] for s, row in mix.items()},
             "realized_before": {s: row["realized_share"] for s, row in mix.items()}}
    run.metrics.log(event)
    if event not in run.state.reweights:  # a kill before the next checkpoint applies it again, once recorded
        run.state.reweights.append(event)
        _save_state(run.state, run.run_dir, run.dist)
    log.info("stage '%s': new mixture weights from step %d on: %s (were %s)", stage.name, trainer.step,
             {k: round(v, 4) for k, v in stage.weights.items()}, {k: round(v, 4) for k, v in before.items()})


def plan_tokenizer(plan: PlanConfig, run_dir: Path, dist: DistContext):
    """The run's base tokenizer (before any stage adds special tokens): given; else the ``model.from`` checkpoint's; else the one prepared shard
    sources were made with (all must agree); else trained once (by the main rank) on the plan's sources. Kept
    in the run folder as ``tokenizer-base.json`` (and as ``tokenizer.json`` until a stage finishes, which then
    holds that stage's tokenizer, :func:`_keep_stage_tokenizer`); a run folder from before the split, whose
    ``tokenizer.json`` is the base, is read as such. The other ranks wait for the main rank at a barrier."""
    from syllabus.data import save_tokenizer, train_tokenizer
    from syllabus.data.shards import shards_tokenizer
    from syllabus.data.tokenizer import training_sample

    if plan.tokenizer.path:
        return load_tokenizer(plan.tokenizer.path)
    if plan.model.from_ is not None:  # the model's own, used as is
        return load_tokenizer(plan.model.from_)
    prepared = shards_tokenizer({name: plan.source_spec(name).path for name in plan.sources})
    base, current = run_dir / BASE_TOKENIZER, run_dir / "tokenizer.json"
    if dist.is_main and not base.exists():
        if current.exists():  # a run folder from before tokenizer-base.json: its tokenizer.json is the base
            base.write_text(current.read_text())
        elif prepared is not None:  # prepared shards: the tokenizer they were made with, kept with the run
            save_tokenizer(prepared, base)
        else:
            names = plan.tokenizer.train_on or list(plan.sources)
            log.info("training a %d-token BPE tokenizer on %s", plan.tokenizer.vocab_size, ", ".join(names))
            texts = training_sample([plan.sources[name] for name in names])
            save_tokenizer(train_tokenizer(texts, plan.tokenizer.vocab_size), base)
        if not current.exists():
            current.write_text(base.read_text())
    if prepared is not None:
        return prepared
    dist.barrier()
    return load_tokenizer(base)


def _keep_stage_tokenizer(run: "_Run", tokenizer) -> None:
    """The run folder's ``tokenizer.json`` becomes the tokenizer of the stage that just finished (its special
    tokens single ids), so the folder's tokenizer matches its newest final weights; main rank only, written
    aside and renamed."""
    if run.dist.is_main:
        tmp = run.run_dir / "tokenizer.json.tmp"
        tmp.write_text(tokenizer.to_str())
        tmp.replace(run.run_dir / "tokenizer.json")


def _end_of_stage_evaluation(stage: StagePlan, trainer: Trainer, tokenizer, last_val: dict) -> dict:
    """Held-out perplexity per domain (from the stage's last evaluation) and the benchmark tasks. Runs on
    every rank (under FSDP2 the forward needs them all); the caller keeps rank 0's numbers."""
    results = {f"ppl/{key.split('/', 1)[1]}": math.exp(value) for key, value in last_val.items()
               if key.startswith("val_loss/")}
    results.update(_task_scores(stage, trainer.raw_model, tokenizer, trainer.autocast_dtype))
    trainer.raw_model.train()
    return results


def _task_scores(stage: StagePlan, model, tokenizer, autocast: torch.dtype | None) -> dict:
    """The stage's benchmark tasks on ``model`` (empty when it has none), forwards autocast to ``autocast`` (the
    run's precision)."""
    if not stage.tasks:
        return {}
    from syllabus.evaluate import run_tasks

    scores = run_tasks(model, tokenizer, stage.tasks, limit=stage.task_limit, autocast=autocast,
                       **task_arguments(stage.task_options))
    return {k: v for k, v in scores.items() if not k.endswith("/seconds")}  # n and stderr stay


def task_arguments(task_options: dict) -> dict:
    """``run_tasks``'s ``shots`` and ``items`` from a stage's ``task_options`` (task -> TaskOptions)."""
    return {"shots": {t: o.shots for t, o in task_options.items() if o.shots is not None},
            "items": {t: o.items for t, o in task_options.items() if o.items is not None}}


def _save_state(state: RunState, run_dir: Path, dist: DistContext) -> None:
    """``run_state.json`` is the main rank's; every rank keeps the same state in memory."""
    if dist.is_main:
        state.save(run_dir)


def _write_report(plan: PlanConfig, run_dir: Path, state: RunState, dist: DistContext) -> Path:
    from syllabus.plan.report import write_report

    path = run_dir / "report.md"
    if dist.is_main:
        write_report(plan, run_dir, asdict(state))
    return path
