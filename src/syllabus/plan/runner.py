"""``run_plan``: train through every stage of a plan, each from the last, evaluating between them.

The only place that knows about more than one stage. Each stage is a ``Trainer`` run with its own
checkpoint folder (``stages/<n>-<name>/checkpoints``); the run folder also holds the resolved plan,
``run_state.json``, ``metrics.jsonl`` (with ``stage``), ``evals.jsonl`` and the report. Running again on
the same folder continues exactly: a finished stage is skipped, a started one resumes from its newest
valid checkpoint, and the next one starts from the previous stage's final weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from tokenizers import Tokenizer

from syllabus.config.errors import ConfigError
from syllabus.config.load import load_config
from syllabus.config.plan import PlanConfig
from syllabus.data import add_special_tokens, epoch_tokens, iter_eval_batches, load_tokenizer, open_batches
from syllabus.model import Transformer
from syllabus.config.expect import parse_expect
from syllabus.plan.decisions import decide, decision_event, extension_steps, missed_targets
from syllabus.plan.describe import describe_plan
from syllabus.plan.forgetting import ForgettingGate
from syllabus.plan.run_state import RunState
from syllabus.plan.stage_tasks import StageTasks
from syllabus.plan.stages import grow_embeddings, stage_phases, stage_steps, stage_weights
from syllabus.train import checkpoint as ckpt
from syllabus.train.distributed import DistContext
from syllabus.train.metrics import MetricsLog, NullLog
from syllabus.train.pretrain import padded_vocab_size
from syllabus.train.run_lock import RunLock
from syllabus.train.stops import RunHalted, StopRequest
from syllabus.train.trainer import Trainer

log = logging.getLogger("syllabus")


def load_plan(path: str | Path, overrides: list[str] | None = None) -> PlanConfig:
    return load_config(PlanConfig, path, overrides)


def stage_dir(run_dir: Path, index: int, plan: PlanConfig) -> Path:
    return run_dir / "stages" / f"{index + 1}-{plan.stages[index].name}"


def run_plan(plan: PlanConfig, run_dir: str | Path, *, pause_after: str | None = None) -> dict:
    """Train ``plan`` in ``run_dir``; returns a summary (``status``: finished, paused or stopped)."""
    run_dir = Path(run_dir)
    if pause_after is not None and pause_after not in {s.name for s in plan.stages}:
        raise ConfigError(f"--pause-after: '{pause_after}' is not a stage ({', '.join(s.name for s in plan.stages)})")
    defaults = plan.training_config(0)
    dist = DistContext.from_env(defaults.device, defaults.strategy, defaults.dist_timeout_seconds)
    try:
        return _run_stages(plan, run_dir, pause_after, dist)
    finally:
        dist.close()


def _run_stages(plan: PlanConfig, run_dir: Path, pause_after: str | None, dist: DistContext) -> dict:
    with StopRequest() as stop, RunLock(run_dir, enabled=dist.is_main):
        state = RunState.load(run_dir)
        stage_dicts = [s.model_dump(by_alias=True) for s in plan.stages]
        state.check_frozen(stage_dicts)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "plan.yaml").write_text(yaml.safe_dump(plan.model_dump(by_alias=True), sort_keys=False))
        base_tokenizer = plan_tokenizer(plan, run_dir, dist)
        epochs = {name: epoch_tokens(path, base_tokenizer) for name, path in plan.sources.items()
                  if any(s.budget.epochs and name in s.data for s in plan.stages)}
        per_step = [stage_phases(s, plan.training_config(i), 1)[0].tokens_per_step for i, s in enumerate(plan.stages)]
        steps = [stage_steps(s, per_step[i], epochs) for i, s in enumerate(plan.stages)]
        extend_by = [extension_steps(parse_expect(s.expect)[0], per_step[i], sum(epochs.get(d, 0) for d in s.data))
                     for i, s in enumerate(plan.stages)]
        if dist.is_main:
            print(describe_plan(plan, steps, epochs))
        defaults = plan.training_config(0)
        metrics = MetricsLog(run_dir, use_tensorboard=defaults.use_tensorboard, use_wandb=defaults.use_wandb,
                             wandb_project=defaults.wandb_project, wandb_mode=defaults.wandb_mode,
                             run_name=plan.name) if dist.is_main else None
        evals = MetricsLog(run_dir, filename="evals.jsonl") if dist.is_main else None
        try:
            for index, stage in enumerate(plan.stages):
                if stage.name in state.completed:
                    continue
                state.started.setdefault(stage.name, stage_dicts[index])
                state.save(run_dir)
                outcome = _run_stage(plan, index, steps[index], run_dir, state, base_tokenizer, dist, stop,
                                     metrics, evals, extend_by[index])
                if outcome == "paused_on_miss":
                    state.completed.append(stage.name)
                    state.save(run_dir)
                    _write_report(plan, run_dir, state)
                    log.warning("paused after stage '%s': its expectations were missed (on_miss: pause)", stage.name)
                    return {"status": "paused", "stage": stage.name, "run_dir": str(run_dir)}
                if outcome != "finished":
                    return {"status": outcome, "stage": stage.name, "run_dir": str(run_dir)}
                state.completed.append(stage.name)
                state.save(run_dir)
                if stage.pause or pause_after == stage.name:
                    _write_report(plan, run_dir, state)
                    log.info("paused after stage '%s' as asked; edit later stages if you like, then run again",
                             stage.name)
                    return {"status": "paused", "stage": stage.name, "run_dir": str(run_dir)}
            report = _write_report(plan, run_dir, state)
            return {"status": "finished", "run_dir": str(run_dir), "report": str(report)}
        finally:
            for sink in (metrics, evals):
                if sink is not None:
                    sink.close()


def _run_stage(plan: PlanConfig, index: int, max_steps: int, run_dir: Path, state: RunState, base_tokenizer,
               dist: DistContext, stop: StopRequest, metrics, evals, extend_by: int = 0) -> str:
    stage = plan.stages[index]
    folder = stage_dir(run_dir, index, plan)
    evaluation = plan.stage_evaluation(index)
    planned_steps = max_steps
    max_steps += state.extensions.get(stage.name, 0) * extend_by  # extensions already decided survive a restart
    config = plan.training_config(index, planned_steps).model_copy(update={
        "out_dir": str(folder), "eval_interval": plan.stages[index].overrides.get("eval_interval", evaluation.every),
        "eval_batches": evaluation.batches, "max_steps": max_steps})
    tokenizer, new_ids = stage_tokenizer(plan, index, base_tokenizer)
    resume_from = ckpt.latest_valid_checkpoint(folder / "checkpoints")
    torch.manual_seed(config.seed)  # the same start whether this process ran the previous stage or not
    model = _stage_model(plan, index, run_dir, config, tokenizer, new_ids, resume_from)
    weights = stage_weights(plan, index)
    batches = open_batches({s: plan.sources[s] for s in weights}, weights, tokenizer, seed=config.seed,
                           rank=dist.rank, world_size=dist.world_size, doc_attention=config.doc_attention,
                           num_workers=config.num_workers)
    eval_seq = min(plan.training_config(0).max_seq_length, model.config.max_position_embeddings)
    eval_batches = {d: (lambda d=d: iter_eval_batches(plan.sources[d], tokenizer, seq_len=eval_seq,
                                                      batch_size=config.micro_batch_size,
                                                      max_batches=evaluation.batches))
                    for d in evaluation.perplexity}
    gate = ForgettingGate(plan.forgetting, state.reference_ppl, weights, metrics or NullLog())
    hooks = [StageTasks(evaluation.tasks, evaluation.tasks_every, evaluation.limit, index, evals, metrics)] \
        if evaluation.tasks_every and evaluation.tasks else []
    # Curriculum points given as fractions stay where the planned budget put them, however often it is extended.
    trainer = Trainer(config, model, tokenizer, batches, out_dir=run_dir, checkpoint_dir=folder / "checkpoints",
                      eval_batches=eval_batches, phases=stage_phases(stage, config, planned_steps), stage=stage.name,
                      dist=dist, metrics=metrics or NullLog(), callbacks=[gate], extra_state=gate.state_dict,
                      load_extra_state=gate.load_state_dict, stop=stop, step_hooks=hooks)
    if resume_from is not None:
        trainer.restore(resume_from)
    elif stage.optimizer == "continue" and index > 0:
        _carry_optimizer(trainer, stage_dir(run_dir, index - 1, plan))
    log.info("stage %d/%d '%s': %d steps", index + 1, len(plan.stages), stage.name, max_steps)
    if metrics is not None and resume_from is None:
        metrics.log({"step": 0, "stage": stage.name, "event": "stage_start", "new_token_ids": new_ids,
                     **getattr(model, "init_record", {})})
    expectation = parse_expect(stage.expect)[0] if stage.expect else None
    while True:
        result = trainer.train()
        if result.stopped_by is not None:
            log.warning("stage '%s' stopped at step %d by %s; run again to continue", stage.name, result.step,
                        result.stopped_by)
            return "stopped"
        results = _end_of_stage_evaluation(plan, index, trainer, tokenizer, result.last_val)
        if expectation is None:
            break
        missed = missed_targets(expectation, results)
        decision = decide(expectation, missed, state.extensions.get(stage.name, 0))
        event = decision_event(stage.name, result.step, decision, missed)
        if decision == "extend":
            done = state.extensions.get(stage.name, 0) + 1
            event.update(extension=done, times=expectation.extend.times, added_steps=extend_by,
                         max_steps=trainer.config.max_steps + extend_by)
        elif decision == "continue_after_extensions":
            event["times"] = expectation.extend.times
        _record_decision(run_dir, state, metrics, evals, event, index, result, results)
        if decision != "extend":
            break
        # Train on: the LR schedule is re-planned for the new end (lr_at with total = the extended budget).
        state.extensions[stage.name] = event["extension"]
        state.save(run_dir)
        trainer.config = trainer.config.model_copy(update={"max_steps": event["max_steps"]})
        log.warning("stage '%s' missed %s; extending it by %d steps (%d of %d)", stage.name,
                    ", ".join(missed), extend_by, event["extension"], expectation.extend.times)
    state.results[stage.name] = results
    for domain in stage.data:
        if f"ppl/{domain}" in results:
            state.reference_ppl[domain] = results[f"ppl/{domain}"]
    if evals is not None:
        evals.log({"stage": stage.name, "stage_index": index, "step": result.step,
                   "tokens_seen": result.tokens_seen, **results})
        metrics.log({"step": result.step, "stage": stage.name, "event": "stage_end", **results})
    if expectation is not None and decision == "stop":
        state.save(run_dir)
        _write_report(plan, run_dir, state)
        raise RunHalted(f"stage '{stage.name}' missed its expectations ({_describe_missed(missed)}); "
                        f"on_miss: stop. The stage's final checkpoint is kept; see {run_dir / 'report.md'}")
    if expectation is not None and decision == "pause":
        return "paused_on_miss"
    return "finished"


def _record_decision(run_dir: Path, state: RunState, metrics, evals, event: dict, index: int, result,
                     results: dict) -> None:
    state.decisions.append(event)
    state.save(run_dir)
    if metrics is not None:
        metrics.log(event)
    if event["decision"] == "extend" and evals is not None:  # the evaluation that led to the extension
        evals.log({"stage": event["stage"], "stage_index": index, "step": result.step,
                   "tokens_seen": result.tokens_seen, "kind": "before_extension", **results})


def _describe_missed(missed: dict) -> str:
    return ", ".join(f"{k} = {'not measured' if v is None else f'{v:.4g}'}" for k, v in missed.items())


def plan_tokenizer(plan: PlanConfig, run_dir: Path, dist: DistContext):
    """The run's base tokenizer: given, or trained once on the plan's sources and kept in the run folder."""
    from syllabus.data import save_tokenizer, train_tokenizer
    from syllabus.data.tokenizer import training_sample

    if plan.tokenizer.path:
        return load_tokenizer(plan.tokenizer.path)
    path = run_dir / "tokenizer.json"
    if not path.exists() and dist.is_main:
        names = plan.tokenizer.train_on or list(plan.sources)
        log.info("training a %d-token BPE tokenizer on %s", plan.tokenizer.vocab_size, ", ".join(names))
        texts = training_sample([plan.sources[name] for name in names])
        save_tokenizer(train_tokenizer(texts, plan.tokenizer.vocab_size), path)
    dist.barrier()
    return load_tokenizer(path)


def stage_tokenizer(plan: PlanConfig, index: int, base_tokenizer):
    """The base tokenizer plus the special tokens of stages 0..index, and the ids stage ``index`` adds."""
    tokenizer = Tokenizer.from_str(base_tokenizer.to_str())  # a copy: the base stays as it is
    new_ids: list[int] = []
    for i in range(index + 1):
        tokens = plan.stages[i].special_tokens
        if tokens:
            ids = add_special_tokens(tokenizer, tokens)
            if i == index:
                new_ids = ids
    return tokenizer, new_ids


def _stage_model(plan, index, run_dir, config, tokenizer, new_ids, resume_from) -> Transformer:
    vocab = padded_vocab_size(tokenizer.get_vocab_size())
    if resume_from is not None:  # mid-stage: the checkpoint's shape; weights are loaded by Trainer.restore
        shape = json.loads((resume_from / "model_config.json").read_text())
        return Transformer(type(config.model_shape())(**shape))
    if index == 0:
        return Transformer(config.model_shape(vocab_size=vocab))
    previous = stage_dir(run_dir, index - 1, plan) / "checkpoints" / "final"
    problem = ckpt.verify_checkpoint(previous)
    if problem:
        raise ckpt.CheckpointError(f"stage '{plan.stages[index - 1].name}' has no usable final checkpoint "
                                   f"({problem})")
    shape = json.loads((previous / "model_config.json").read_text())
    model = Transformer(type(config.model_shape())(**shape))
    weights = ckpt.load_model_state(previous)
    ckpt.load_weights(model, weights)
    model.init_record = {"init_from": str(previous), "init_sha256": weights_digest(weights)}
    grow_embeddings(model, new_ids, max(vocab, model.config.vocab_size), seed=config.seed)
    return model


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's bytes, in name order: the identity of a set of weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _carry_optimizer(trainer: Trainer, previous_dir: Path) -> None:
    state = ckpt.load_trainer_state(previous_dir / "checkpoints" / "final")
    try:
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, RuntimeError) as err:
        log.warning("optimizer state of the previous stage does not fit (%s); starting it fresh", err)


def _end_of_stage_evaluation(plan: PlanConfig, index: int, trainer: Trainer, tokenizer, last_val: dict) -> dict:
    evaluation = plan.stage_evaluation(index)
    results = {}
    for key, value in last_val.items():
        if key.startswith("val_loss/"):
            domain = key.split("/", 1)[1]
            results[f"ppl/{domain}"] = math.exp(value)
    if evaluation.tasks:
        from syllabus.evaluate import run_tasks

        scores = run_tasks(trainer.raw_model, tokenizer, evaluation.tasks, limit=evaluation.limit)
        results.update({k: v for k, v in scores.items() if not k.endswith("/seconds")})  # n and stderr stay
    trainer.raw_model.train()
    return results


def _write_report(plan: PlanConfig, run_dir: Path, state: RunState) -> Path:
    from syllabus.plan.report import write_report

    return write_report(plan, run_dir, asdict(state))

