"""Data-parallel training on torch.distributed, as started by torchrun (or any launcher that sets
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT).

A GAN step runs several forward passes through D (real, fake, fake-for-G) before and between its
backward passes, which does not fit DistributedDataParallel's one-forward-one-backward reducer.
So, as stylegan2-ada does, each rank keeps plain modules and the gradients of each update are
averaged with one all-reduce just before the optimizer step; the weights start identical (a
broadcast from rank 0) and therefore stay identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """What torchrun tells this process (a single process when nothing is set)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


_control: Any = None  # a gloo group for small CPU messages (stop flags), whatever the backend


def init(info: DistInfo, device_type: str) -> None:
    """Join the process group: nccl on CUDA, gloo on the CPU."""
    global _control
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    # a rank that fails makes torchrun stop the others; the timeout bounds a hang in between
    dist.init_process_group(backend, timeout=timedelta(minutes=30))
    _control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD


def shutdown(finished: bool = False) -> None:
    """Leave the process group. After a run that `finished` on every rank, the ranks first meet at
    a barrier, so that none tears its connections down while a peer still uses them (a gloo rank
    that did so was seen to abort at exit); after an error they leave at once, without waiting for
    ranks that may be gone."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's weights and buffers everywhere."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """One all-reduce of the gradients of `params`, divided by the number of ranks."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(t: torch.Tensor, world: int) -> torch.Tensor:
    out = t.clone()
    dist.all_reduce(out)
    return out / world


def any_rank(flag: bool) -> bool:
    """True when `flag` is true on any rank (e.g. a signal that reached one process)."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control)
    return bool(t.item())


def gather(obj: Any, world: int) -> list[Any]:
    """Every rank's `obj`, on every rank (picklable objects; used at checkpoints only)."""
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj, group=_control)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]
