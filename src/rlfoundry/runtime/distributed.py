"""Data parallelism for every trainer: this process's place in a `torchrun` /
`accelerate launch` job, and the two collectives the losses need.

Every loss is divided by GLOBAL counts (tokens or sequences of the whole optimizer
batch over all ranks), so summed gradients equal the single-process full-batch update.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dist:
    """This process's place in a `torchrun` / `accelerate launch` job (1 process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group that `torchrun` / `accelerate launch` describe in the env.

    gloo on CPU, nccl on GPU. Returns `Dist()` when not launched that way.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def all_reduce_sum(x: Tensor, d: Dist) -> Tensor:
    """Sum of `x` over all processes (a copy; `x` itself is untouched)."""
    if d.world == 1:
        return x
    import torch.distributed as dist

    y = x.clone()
    dist.all_reduce(y)
    return y


def sync_gradients(model: torch.nn.Module, d: Dist) -> None:
    """Sum gradients over processes.

    Every loss here is already divided by GLOBAL counts (tokens or sequences of the
    whole optimizer batch over all ranks), so the sum, not DDP's mean, is the gradient
    of the full-batch loss: 2 processes x B/2 give the update of 1 process x B.
    """
    if d.world == 1:
        return
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()
