"""Process-group set-up and the few places the loop differs across world sizes (torchrun + DDP).

The model file knows nothing of this: ``DistContext.wrap`` applies compile and DDP around it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def single(cls, device: str = "auto") -> "DistContext":
        return cls(0, 1, 0, pick_device(device, 0))

    @classmethod
    def from_env(cls, device: str = "auto") -> "DistContext":
        """Read torchrun's environment; initialise the process group when the world has more than one rank."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls.single(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        chosen = pick_device(device, local_rank)
        if not dist.is_initialized():
            backend = "nccl" if chosen.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, device_id=chosen if chosen.type == "cuda" else None)
        return cls(rank, world_size, local_rank, chosen)

    def wrap(self, model: torch.nn.Module, config) -> torch.nn.Module:
        model.gradient_checkpointing = bool(config.gradient_checkpointing)
        if config.compile:
            model = torch.compile(model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def no_sync(self, model: torch.nn.Module):
        """Skip the gradient all-reduce on micro-steps that do not step the optimizer."""
        return model.no_sync() if hasattr(model, "no_sync") else contextlib.nullcontext()

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def pick_device(device: str, local_rank: int) -> torch.device:
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
