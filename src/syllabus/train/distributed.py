"""Process-group set-up and the few places the loop differs across world sizes (torchrun + DDP or FSDP2).

The model file knows nothing of this: ``DistContext.wrap`` applies activation checkpointing, compile and
DDP or FSDP2 around it (torchtitan's split: the model stays plain PyTorch, the trainer decides how to wrap).

Invariants kept here:

- every rank builds the same model (the caller seeds before building; DDP also broadcasts rank 0's
  weights, FSDP2 shards each rank's identical full copy);
- every rank leaves the loop at the same step: :meth:`DistContext.should_stop` all-reduces the local stop
  flag (a signal on any rank, or a callback) once per step, so a SIGTERM delivered to one rank, or to all
  of them at slightly different moments, stops them all after the same step. The flag is a CPU tensor
  all-reduced over gloo (a gloo group beside NCCL on GPUs), so reading it never waits for the device;
- a rank that waits on a collective longer than ``dist_timeout_seconds`` fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from syllabus.hf.sharded import is_pending, materialize_from_hf
from syllabus.train import faults
from syllabus.train.compile_choice import compile_blocks
from syllabus.train.launch import watch_launcher
from syllabus.train.precision import use_tf32_matmuls
from syllabus.train.sharded_init import init_sharded, is_deferred

@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    strategy: str = "single"  # "single" (one rank), "ddp" or "fsdp"
    host_group: object = None  # gloo group for host-side flags when the default group is NCCL (None: default)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """True when weights and optimizer state are FSDP2 DTensor shards (checkpoints are then DCP)."""
        return self.strategy == "fsdp"

    @classmethod
    def single(cls, device: str = "auto") -> "DistContext":
        return cls(0, 1, 0, pick_device(device, 0))

    @classmethod
    def from_env(cls, device: str = "auto", strategy: str = "auto", timeout_seconds: float = 600) -> "DistContext":
        """Read torchrun's environment; initialise the process group when the world has more than one rank.

        nccl on CUDA, gloo on CPU; collectives time out after ``timeout_seconds``. ``strategy`` ``auto``
        means DDP; with a single rank every strategy is plain single-process training, except ``fsdp`` under
        torchrun (``RANK`` set): FSDP2 over a one-rank mesh, so one GPU runs the sharded code path (and its
        sharded checkpoints) as many do.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1 and not (strategy == "fsdp" and "RANK" in os.environ):
            return cls.single(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        watch_launcher()  # a SIGKILLed torchrun takes this worker with it
        chosen = pick_device(device, local_rank)
        if not dist.is_initialized():
            backend = "nccl" if chosen.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_seconds),
                                    device_id=chosen if chosen.type == "cuda" else None)
        host_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        return cls(rank, world_size, local_rank, chosen, "fsdp" if strategy == "fsdp" else "ddp", host_group)

    def close(self) -> None:
        """Destroy the process group (every rank, on success, error or signal)."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    # --- wrapping -----------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, config) -> torch.nn.Module:
        """The module the loop calls. Under FSDP2 it is ``model`` itself, sharded in place."""
        model.gradient_checkpointing = bool(config.gradient_checkpointing)
        model.use_fused_kernels(config.fused_kernels and config.compile is not True)
        if self.strategy == "fsdp":
            return self._fully_shard(model, config)
        if config.compile is True:  # "auto" decides during the stage (train/compile_choice.py)
            compile_blocks(model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            # buffers (the RoPE tables) are the same constants on every rank: no broadcast each forward
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
        return model

    def _fully_shard(self, model: torch.nn.Module, config) -> torch.nn.Module:
        """FSDP2: each transformer block is its own unit (compiled in place when asked), then the root
        (embeddings, final norm, head). With bf16 the parameters are all-gathered and computed in bf16
        and gradients reduced in fp32, so no autocast is needed; the optimizer steps fp32 shards."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(self.device.type, (self.world_size,))
        policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                  if config.mixed_precision == "bf16" else MixedPrecisionPolicy())
        for block in model.model.layers:
            if config.compile is True:  # "auto" stays eager: a block must be compiled before it is sharded
                block.compile()  # in place: parameter names (and so checkpoints) do not change
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        if is_pending(model):  # built on the meta device: each rank reads only its own slices of the checkpoint
            materialize_from_hf(model, self.device)
        elif is_deferred(model):  # built on the meta device: allocate and initialise this rank's shards only
            init_sharded(model, self.device)
        return model

    @property
    def autocast_needed(self) -> bool:
        """False under FSDP2, whose mixed-precision policy already casts parameters."""
        return self.strategy != "fsdp"

    # --- the step -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self, model: torch.nn.Module):
        """Skip the gradient reduction on micro-steps that do not step the optimizer.

        Must enclose the backward as well as the forward (FSDP2 reads its flag in backward hooks)."""
        if self.strategy == "fsdp":
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        elif hasattr(model, "no_sync"):
            with model.no_sync():
                yield
        else:
            yield

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """Clip to ``max_norm`` and return the global gradient norm as a plain tensor.

        Under FSDP2 the gradients are DTensor shards: their norm is a partial DTensor, reduced across
        ranks by ``full_tensor()`` before clipping, so every rank clips by the same global norm."""
        if self.strategy != "fsdp":
            return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        from torch.distributed.tensor import DTensor

        params = [p for p in model.parameters() if p.grad is not None]
        total = torch.nn.utils.get_total_norm([p.grad for p in params], 2.0)
        if isinstance(total, DTensor):
            total = total.full_tensor()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return total

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def should_stop(self, local: bool, step: int) -> bool:
        """True on every rank when any rank wants to stop; called once per step by every rank."""
        faults.crash_if_asked(self.rank, step)
        if self.world_size == 1:
            return local
        flag = torch.tensor([1.0 if local else 0.0])  # on the host: no wait for the device's queued work
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.host_group)
        return bool(flag.item() > 0)

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast_object(self, value):
        """Rank 0's ``value`` on every rank (any picklable object; the others' values are ignored).

        Collective: every rank must call it at the same point. Used for decisions taken from an evaluation
        (results between stages, the forgetting gate's action), so ranks can never disagree about them."""
        if self.world_size == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def pick_device(device: str, local_rank: int) -> torch.device:
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    use_tf32_matmuls("cuda")
    return torch.device("cuda", local_rank)
