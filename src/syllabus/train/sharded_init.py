"""Under FSDP2 no rank ever holds the whole model: it is built on the meta device, sharded, then initialised.

torchtitan's order. :func:`build_model` builds a ``Transformer`` on the meta device (no memory, no random draws)
and notes the RNG state it would have been built from; ``DistContext.wrap`` shards it with ``fully_shard`` and
then calls :func:`init_sharded`, which allocates each rank's shards (``to_empty``) and fills them.

Invariant: the initial weights are bit for bit those of the same model built normally from the same RNG state
(``torch.manual_seed(seed)`` then ``Transformer(config)``), on any world size, so a run's start does not depend
on the strategy. The constructor's draws are replayed in the order it makes them: first the default
initialisation of every ``nn.Linear`` / ``nn.Embedding`` in construction order (``modules()`` order: each is
built as it is assigned), each made as a throw-away module on the CPU, then ``Transformer.reset_parameters``'s
draws, each parameter made whole on the CPU by ``init_parameter_`` and only this rank's shard kept. The largest
tensor a rank holds beyond its shards is therefore one parameter (the embedding), never the model. The RNG is
left where the normal build leaves it.
"""

from __future__ import annotations

import torch
from torch import nn

from syllabus.model.rotary import rotary_tables
from syllabus.model.transformer import Transformer, init_parameter_


def build_model(config, sharded: bool) -> Transformer:
    """``Transformer(config)``; with ``sharded`` (FSDP2) on the meta device, to be sharded and initialised by
    :func:`init_sharded` (``DistContext.wrap`` does both). The caller seeds first, as for a normal build."""
    if not sharded:
        return Transformer(config)
    rng = torch.get_rng_state()
    with torch.device("meta"):
        model = Transformer(config)
    model.deferred_init_rng = rng
    return model


def is_deferred(model: nn.Module) -> bool:
    """Whether ``model`` was built on the meta device by :func:`build_model` and is still to be initialised."""
    return getattr(model, "deferred_init_rng", None) is not None


def init_sharded(model: Transformer, device: torch.device) -> None:
    """Allocate the shards of ``model`` (built by :func:`build_model`, already ``fully_shard``-ed) on ``device``
    and give them the values of a normal build (see the module docstring); the rotary tables are computed."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    model.to_empty(device=device)
    config = model.config
    cos, sin = rotary_tables(config.head_size, config.max_position_embeddings, config.rope_theta,
                             config.rope_scaling)
    with torch.no_grad():
        model.rope_cos.copy_(cos)
        model.rope_sin.copy_(sin)
        torch.set_rng_state(model.deferred_init_rng)
        for module in model.modules():  # the constructor's default initialisations, in the order it made them
            if isinstance(module, nn.Linear):
                nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            elif isinstance(module, nn.Embedding):
                nn.Embedding(module.num_embeddings, module.embedding_dim, module.padding_idx)
        for name, p in model.named_parameters():  # then reset_parameters', one whole parameter at a time
            full = torch.empty(p.shape)
            init_parameter_(name, full, config)
            if isinstance(p, DTensor):
                p.to_local().copy_(distribute_tensor(full, p.device_mesh, p.placements,
                                                     src_data_rank=None).to_local())
            else:
                p.copy_(full)
    model.deferred_init_rng = None
