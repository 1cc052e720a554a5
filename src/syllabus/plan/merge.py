"""Checkpoint merging at a stage's end: the average of its last K checkpoints against its plain final.

Invariant kept: the stage's ``final`` is whichever candidate the plan's rule picks, and picking again gives
the same answer (the candidates and their evaluation are deterministic), so a run killed while merging and
started again ends with the same ``final``. The decision is rank 0's, broadcast.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import torch

from syllabus.plan.numbers import number_text
from syllabus.plan.stages import StagePlan
from syllabus.train import checkpoint as ckpt
from syllabus.train.trainer import Trainer

log = logging.getLogger("syllabus")


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the weights of ``paths`` (either checkpoint format), summed in fp32 and
    returned in each tensor's own dtype. Raises ``CheckpointError`` when their tensors differ in name or shape."""
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = ckpt.load_model_state(path)
        if total and (state.keys() != total.keys() or any(state[k].shape != total[k].shape for k in state)):
            raise ckpt.CheckpointError(f"cannot average {path} with {paths[0]}: the weights differ in name or shape")
        for name, tensor in state.items():
            dtypes[name] = tensor.dtype
            total[name] = total[name] + tensor.float() if name in total else tensor.float().clone()
    return {name: (tensor / len(paths)).to(dtypes[name]) for name, tensor in total.items()}


def merge_at_stage_end(stage: StagePlan, trainer: Trainer, final_val: dict, evaluate_tasks, events, evals) -> dict:
    """Average the stage's newest ``stage.merge.last`` checkpoints, evaluate the average, keep the better of
    it and the plain final (``final_val`` is the final's last evaluation) as the stage's ``final``, and leave
    the chosen weights in ``trainer.raw_model``. ``evaluate_tasks(model) -> dict`` scores the stage's
    benchmark tasks. Logs one ``event: merge`` record per candidate to ``events`` and ``evals``; returns the
    chosen candidate's evaluation record (``val_loss/<domain>`` in nats, like ``final_val``)."""
    spec, dist = stage.merge, trainer.dist
    dist.barrier()  # the main rank has just made checkpoints/final
    interval = stage.config.save_interval  # the final step and the periodic saves; not the "best" ones between
    candidates = [p for p in ckpt.list_checkpoints(stage.checkpoints)
                  if int(p.name.removeprefix("step_")) in (stage.max_steps,)
                  or int(p.name.removeprefix("step_")) % interval == 0][:spec.last]
    if len(candidates) < spec.last:
        log.warning("stage '%s': merge.last=%d but only %d checkpoints exist; keeping the plain final",
                    stage.name, spec.last, len(candidates))
        return final_val
    final_weights = ckpt.load_model_state(stage.checkpoints / "final")
    scores = {"final": {**final_val, **evaluate_tasks(trainer.raw_model)}}
    averaged = average_checkpoints(candidates)
    _load_full_weights(trainer, averaged)
    scores["merged"] = {**trainer.validation_losses(), **evaluate_tasks(trainer.raw_model)}
    scores = dist.broadcast_object(scores)
    domains = stage.own_sources if spec.by == "stage_domains" else list(stage.eval_sources)
    loss = {name: _mean_loss(record, domains) for name, record in scores.items()}
    chosen, note = choose_candidate(spec, loss, domains)
    if note:
        log.warning("stage '%s': merge has nothing to choose by: %s", stage.name, note)
    names = [p.name for p in candidates]
    for name, record in scores.items():
        row = {"step": trainer.step, "stage": stage.name, "event": "merge", "candidate": name, "chosen": name == chosen,
               "averaged": names, "rule": f"{spec.choose} by {spec.by}", "mean_loss": loss[name],
               **({"note": note} if note else {}),
               **{k: v for k, v in record.items() if k.startswith("val_loss") or "/" in k}}
        events.log(row)
        evals.log(row)
    log.info("stage '%s': average of %s has mean held-out loss %s, plain final %s; keeping the %s",
             stage.name, ", ".join(names), number_text(loss["merged"], ".4f"), number_text(loss["final"], ".4f"),
             chosen)
    if chosen == "final":
        _load_full_weights(trainer, final_weights)
        return final_val
    if dist.is_main:
        _write_merged_final(stage, trainer, averaged)
    dist.barrier()
    return {"step": trainer.step, **{k: v for k, v in scores["merged"].items() if k.startswith("val_loss")}}


def choose_candidate(spec, loss: dict[str, float], domains: list[str]) -> tuple[str, str | None]:
    """The candidate (``"final"`` or ``"merged"``) that ``spec`` picks from their mean held-out ``loss``, and why
    when the rule could not be applied: ``choose: best`` without a finite loss for both keeps the plain final
    (nothing to choose by) and says so; ties go to the final."""
    if spec.choose != "best":
        return spec.choose, None
    if all(math.isfinite(value) for value in loss.values()):
        return min(loss, key=lambda name: (loss[name], name != "final")), None
    which = "either candidate" if not any(map(math.isfinite, loss.values())) else "one candidate"
    return "final", (f"no held-out loss measured for {which} on {', '.join(domains) or 'any domain'} (no held-out "
                     f"rows scored); kept the plain final")


def _mean_loss(record: dict, domains: list[str]) -> float:
    """Mean held-out loss over ``domains`` (the ones measured), else ``val_loss``, else inf (not measured)."""
    values = [record[f"val_loss/{d}"] for d in domains if isinstance(record.get(f"val_loss/{d}"), (int, float))]
    return sum(values) / len(values) if values else record.get("val_loss", math.inf)


def _load_full_weights(trainer: Trainer, state: dict[str, torch.Tensor]) -> None:
    """Full weights into the trained model, plain or sharded by FSDP2."""
    if trainer.dist.sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        if trainer.raw_model.config.tie_word_embeddings and "lm_head.weight" not in state:
            state = {**state, "lm_head.weight": state["model.embed_tokens.weight"]}
        trainer.raw_model.reshard()  # after an evaluation the root module still holds unsharded parameters
        set_model_state_dict(trainer.raw_model, state, options=StateDictOptions(full_state_dict=True))
    else:
        ckpt.load_weights(trainer.raw_model, {k: v.to(trainer.dist.device) for k, v in state.items()})


def _write_merged_final(stage: StagePlan, trainer: Trainer, averaged: dict[str, torch.Tensor]) -> None:
    """The average as ``checkpoints/final`` (single-folder format): written aside, then renamed into place."""
    final = stage.checkpoints / "final"
    state = ckpt.load_trainer_state(final)
    text = {name: (final / name).read_text() for name in ("tokenizer.json",) if (final / name).exists()}
    json_files = {name: json.loads((final / name).read_text())
                  for name in ("model_config.json", "run_config.json")}
    if trainer.raw_model.config.tie_word_embeddings:
        averaged = {k: v for k, v in averaged.items() if k != "lm_head.weight"}
    aside = stage.folder / "merging"
    shutil.rmtree(aside, ignore_errors=True)  # what a run killed while merging left
    written = ckpt.save_checkpoint(aside, trainer.step, averaged, state, json_files=json_files, text_files=text)
    ckpt._replace_dir(written, final)
    shutil.rmtree(aside, ignore_errors=True)  # nothing is left beside the stage's checkpoints
