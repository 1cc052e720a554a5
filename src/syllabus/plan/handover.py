"""What passes from one stage to the next: the tokenizer with its special tokens, the final weights
(grown for new tokens), and, with ``optimizer: continue``, the AdamW moments.

Invariant kept: a stage starts from the same weights whether the process that runs it also ran the
previous stage or not, and under any world size or strategy: everything is read from the previous
stage's ``final`` checkpoint (single-folder or sharded) and grown deterministically from the stage seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer

from syllabus.config.errors import ConfigError
from syllabus.data import add_special_tokens
from syllabus.hf.sharded import is_pending, start_from_hf
from syllabus.model import Transformer
from syllabus.plan.stages import StagePlan
from syllabus.train import checkpoint as ckpt
from syllabus.train import sharded_checkpoint
from syllabus.train.distributed import DistContext
from syllabus.train.pretrain import padded_vocab_size
from syllabus.train.sharded_init import build_model
from syllabus.train.optimizer import build_optimizer
from syllabus.train.trainer import Trainer

log = logging.getLogger("syllabus")


def stage_tokenizer(base_tokenizer: Tokenizer, stage: StagePlan) -> tuple[Tokenizer, list[int]]:
    """A copy of the base tokenizer with the special tokens of this stage and the ones before it, and the
    ids this stage adds (empty when it adds none; a token the tokenizer already had, such as an imported
    model's ``<think>``, keeps its id and row and is not among them). The base tokenizer is not changed."""
    tokenizer = Tokenizer.from_str(base_tokenizer.to_str())
    earlier = stage.special_tokens[:len(stage.special_tokens) - len(stage.new_tokens)]
    if earlier:
        add_special_tokens(tokenizer, earlier)
    size = tokenizer.get_vocab_size()
    new_ids = add_special_tokens(tokenizer, stage.new_tokens) if stage.new_tokens else []
    return tokenizer, [i for i in new_ids if i >= size]


def stage_model(stage: StagePlan, previous: StagePlan | None, tokenizer: Tokenizer, new_ids: list[int],
                resume_from: Path | None, dist: DistContext | None = None) -> Transformer:
    """The model a stage trains, on the CPU, before any wrapping (DDP/FSDP2 come later, in the trainer).

    Under ``dist``'s FSDP2 a fresh or resumed model is built on the meta device and initialised shard by shard
    once wrapped (``train/sharded_init.py``), so no rank holds it whole; a later stage's start still reads the
    previous ``final`` whole on every rank.

    Mid-stage (``resume_from``): the checkpoint's shape, weights loaded later by ``Trainer.restore``. The
    first stage: the Hugging Face checkpoint of ``init_from`` (a local folder by now; under ``dist``'s FSDP2 a meta
    model filled with each rank's slices when sharded, under DDP read by the main rank), grown for ``new_ids``, or
    fresh weights from the current RNG (the caller seeds it). A later stage: the previous
    stage's ``final`` weights, with the embedding (and an untied head) grown for ``new_ids``; the model
    carries ``init_record`` (where it came from and the weights' sha256) for the metrics.

    Raises ``CheckpointError`` when the previous stage's ``final`` is missing or torn."""
    vocab = padded_vocab_size(tokenizer.get_vocab_size())
    shape_type = type(stage.config.model_shape())
    dist = dist or DistContext.single("cpu")
    if resume_from is not None:  # under FSDP2 on the meta device: no rank holds the whole model
        return build_model(shape_type(**json.loads((resume_from / "model_config.json").read_text())),
                           sharded=dist.sharded)
    if previous is None and stage.config.init_from is not None:
        model = start_from_hf(stage.config.init_from, sharded=dist.sharded, reads=dist.is_main)
        model.init_record = {"init_from": stage.config.init_from}
        if is_pending(model) and (new_ids or vocab > model.config.vocab_size):
            raise ConfigError(f"stages.0.special_tokens: with strategy fsdp the stage that starts from model.from "
                              f"cannot grow the embedding ({len(new_ids)} new tokens); add them in a later stage")
        if not is_pending(model):
            grow_embeddings(model, new_ids, max(vocab, model.config.vocab_size), seed=stage.config.seed)
        return model
    if previous is None:
        return build_model(stage.config.model_shape(vocab_size=vocab), sharded=dist.sharded)
    final = previous.checkpoints / "final"
    problem = ckpt.verify_checkpoint(final)
    if problem:
        raise ckpt.CheckpointError(f"stage '{previous.name}' has no usable final checkpoint ({problem})")
    model = Transformer(shape_type(**json.loads((final / "model_config.json").read_text())))
    weights = ckpt.load_model_state(final)
    ckpt.load_weights(model, weights)
    model.init_record = {"init_from": str(final), "init_sha256": weights_digest(weights)}
    grow_embeddings(model, new_ids, max(vocab, model.config.vocab_size), seed=stage.config.seed)
    return model


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's bytes, in name order: the identity of a set of weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def carry_optimizer(trainer: Trainer, previous: StagePlan) -> None:
    """``optimizer: continue``: load the AdamW moments of ``previous``'s ``final`` into ``trainer.optimizer``.

    Works for both checkpoint formats and for any strategy (under FSDP2 every rank reads the full state
    and keeps its shard). Rows the embedding gained since (new special tokens, padding) start with zero
    moments; the current stage's hyper-parameters (weight decay, betas) are kept, only the state moves.
    A state that does not fit (another model shape) is logged and the optimizer starts fresh."""
    final = previous.checkpoints / "final"
    saved = _full_optimizer_state(final, trainer)
    current = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    if len(saved["state"]) > len(current) or len(saved["param_groups"]) != len(trainer.optimizer.param_groups):
        log.warning("optimizer state of stage '%s' does not fit this model; starting it fresh", previous.name)
        return
    for index, state in saved["state"].items():
        shape = tuple(current[index].shape)
        for key, value in list(state.items()):
            if key == "step" or tuple(value.shape) == shape:
                continue
            if value.shape[1:] != shape[1:] or value.shape[0] > shape[0]:
                log.warning("optimizer state of stage '%s' does not fit this model; starting it fresh", previous.name)
                return
            grown = value.new_zeros(shape)
            grown[:value.shape[0]] = value
            state[key] = grown
    saved["param_groups"] = [{**{k: v for k, v in group.items() if k != "params"}, "params": saved_group["params"]}
                             for group, saved_group in zip(trainer.optimizer.param_groups, saved["param_groups"])]
    if trainer.dist.sharded:
        _load_full_into_sharded_optimizer(trainer, saved)
    else:
        trainer.optimizer.load_state_dict(saved)


def _full_optimizer_state(final: Path, trainer: Trainer) -> dict:
    """``optimizer.state_dict()`` of the previous stage (positional, full tensors), from either format."""
    if not sharded_checkpoint.is_sharded(final):
        return ckpt.load_trainer_state(final)["optimizer"]
    shape = json.loads((final / "model_config.json").read_text())
    model = Transformer(type(trainer.raw_model.config)(**shape))
    optimizer = build_optimizer(model, trainer.config, torch.device("cpu"))
    sharded_checkpoint.load_sharded_into(final, model, optimizer, collective=False)
    return optimizer.state_dict()


def _load_full_into_sharded_optimizer(trainer: Trainer, saved: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = {id(p): name for name, p in trainer.raw_model.named_parameters()}
    order = [names[id(p)] for group in trainer.optimizer.param_groups for p in group["params"]]
    by_name = {"state": {order[i]: s for i, s in saved["state"].items()},
               "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(trainer.raw_model, trainer.optimizer, by_name,
                             options=StateDictOptions(full_state_dict=True))


@torch.no_grad()
def grow_embeddings(model: torch.nn.Module, new_ids: list[int], padded_size: int, seed: int = 0) -> None:
    """Make room for ``new_ids`` and set their rows to the mean of the existing token embeddings.

    Rows of existing tokens are not touched; rows added as padding get the model's initializer (a large
    random row would dominate the softmax through a tied head), drawn from ``seed`` so a resumed run
    grows them identically. With tied embeddings the head follows.
    """
    generator = torch.Generator(device=model.model.embed_tokens.weight.device).manual_seed(seed)
    embed = model.model.embed_tokens
    old_rows = embed.weight.shape[0]
    if padded_size > old_rows:
        grown = torch.nn.Embedding(padded_size, embed.weight.shape[1], device=embed.weight.device,
                                   dtype=embed.weight.dtype)
        torch.nn.init.normal_(grown.weight, std=model.config.initializer_range, generator=generator)  # padding rows, as at init
        grown.weight[:old_rows] = embed.weight
        model.model.embed_tokens = grown
        if model.config.tie_word_embeddings:
            model.lm_head.weight = grown.weight
        else:
            head = torch.nn.Linear(embed.weight.shape[1], padded_size, bias=False, device=grown.weight.device,
                                   dtype=grown.weight.dtype)
            torch.nn.init.normal_(head.weight, std=model.config.initializer_range, generator=generator)
            head.weight[:old_rows] = model.lm_head.weight
            model.lm_head = head
        model.config.vocab_size = padded_size
    if new_ids:
        first_new = min(new_ids)
        model.model.embed_tokens.weight[new_ids] = model.model.embed_tokens.weight[:first_new].mean(0)
        if not model.config.tie_word_embeddings:
            model.lm_head.weight[new_ids] = model.lm_head.weight[:first_new].mean(0)
