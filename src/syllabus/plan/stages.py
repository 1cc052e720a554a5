"""What a stage turns into before it trains: steps, curriculum phases, mixture weights, grown embeddings."""

from __future__ import annotations

import math

import torch

from syllabus.config.plan import PlanConfig, StageConfig
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.train.schedule import Phase


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
