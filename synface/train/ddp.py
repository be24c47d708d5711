"""Multi-GPU / multi-node training via `torchrun`, driven by its environment variables.

    torchrun --nproc_per_node=8 -m synface train --config paper.yaml --run-dir runs/x

Every rank runs the same `synface.train.loop.train`; `init_distributed()` reads RANK,
WORLD_SIZE and LOCAL_RANK (set by torchrun), picks nccl on CUDA and gloo on CPU, and pins
each rank to GPU LOCAL_RANK. The model is wrapped in DistributedDataParallel, each rank reads
its shard through `EpochSampler` (the DistributedSampler role), and only rank 0 writes
checkpoints, metrics and status. `batch_size` in the config is the global batch.
Without WORLD_SIZE (or with WORLD_SIZE=1) nothing is initialised and the same code runs alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from synface.base.device import resolve_device

__all__ = ["DistContext", "init_distributed", "wrap_model", "broadcast_object", "sync_buffers",
           "all_reduce_flag", "barrier", "shutdown"]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (idempotent); return this rank's context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local)
    if world <= 1:
        return DistContext(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, dev, backend)


def wrap_model(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `module` when distributed, else the module itself."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's value of a picklable object on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to all ranks, so every rank holds the checkpoint's model."""
    if not ctx.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def all_reduce_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when any rank says True (stop requests, NaN losses)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
