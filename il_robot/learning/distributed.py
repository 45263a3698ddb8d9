"""Training on several processes or machines: PyTorch DDP, set up from what torchrun puts in the environment.

torchrun (torch.distributed.run) starts one process per rank and gives each RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE and the rendezvous (MASTER_ADDR, MASTER_PORT). A trainer runs inside `joined(device)`:
started without torchrun it is one process as before (a World of size 1, on which every helper here is
the identity and no collective runs); under torchrun it joins the process group (gloo on the CPU, NCCL on
CUDA) and leaves it at the end, on an error or Ctrl-C too. Rank 0 is the one that writes: logs,
validation, checkpoints, the export and the progress bar (learning/run_loop.py).

A collective blocks until every rank calls it, so every rank must call the same ones in the same order:
the helpers below are called by all ranks alike, never under `if world.main`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# How long a rank waits in a collective for the others: rank 0's validation and checkpoint run while the
# others wait at the next step's gradient exchange, so this bounds one validation (rollouts included).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among those that train together (torchrun's numbering)."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's `x` stacked on the first axis in rank order; gradients flow back to each rank's own
        part (so a loss over all ranks' rows trains them all)."""
        if not self.distributed:
            return x
        return _Gather.apply(x)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor of equal shape on each (no gradient)."""
        if not self.distributed:
            return x
        x = x.detach().clone()
        dist.all_reduce(x)
        return x / self.size

    def total(self, x: np.ndarray) -> np.ndarray:
        """The sum over ranks of a float64 array of equal shape on each."""
        if not self.distributed:
            return x
        t = torch.as_tensor(np.asarray(x, np.float64), device=_collective_device())
        dist.all_reduce(t)
        return t.cpu().numpy()

    def everyone(self, value: T) -> list[T]:
        """Each rank's `value` (any picklable object), in rank order."""
        if not self.distributed:
            return [value]
        values: list = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def mean_figures(self, figures: dict[str, float]) -> dict[str, float]:
        """Log figures averaged over ranks; a figure only some ranks have (e.g. a loss of samples only
        their batch held) is averaged over those."""
        if not self.distributed:
            return figures
        everyone = self.everyone(figures)
        keys = dict.fromkeys(k for f in everyone for k in f)
        return {k: float(np.mean([f[k] for f in everyone if k in f])) for k in keys}

    def from_main(self, load: Callable[[], T]) -> T:
        """What `load()` gives on rank 0, on every rank: the run directory and its checkpoints are on
        rank 0's disk, which the other machines may not see. An expected error (ValueError,
        FileNotFoundError) on rank 0 is raised on every rank, so all stop with its message."""
        if not self.distributed:
            return load()
        box: list = [None]
        if self.main:
            try:
                box[0] = (True, load())
            except (ValueError, FileNotFoundError) as err:
                box[0] = (False, err)
        dist.broadcast_object_list(box, src=0, device=_collective_device())
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """`module` in DistributedDataParallel: rank 0's weights copied to all at the start, and each
        backward's gradients averaged over the ranks. `module`'s forward must compute the loss."""
        if not self.distributed:
            return module
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


ONE = World()


def world_from_env(environ=os.environ) -> World:
    """torchrun's numbering of this process; one process of its own when WORLD_SIZE is not set."""
    if "WORLD_SIZE" not in environ:
        return ONE
    try:
        values = {k.lower(): int(environ.get(k, default))
                  for k, default in zip(ENV, ("0", "1", "0", environ.get("WORLD_SIZE", "1")))}
    except ValueError:
        raise ValueError(f"{', '.join(ENV)} must be integers (torchrun sets them); got "
                         f"{ {k: environ.get(k) for k in ENV} }") from None
    world = World(values["rank"], values["world_size"], values["local_rank"], values["local_world_size"])
    if not (0 <= world.rank < world.size and 0 <= world.local_rank < world.local_size):
        raise ValueError(f"RANK {world.rank} / WORLD_SIZE {world.size}, LOCAL_RANK {world.local_rank} / "
                         f"LOCAL_WORLD_SIZE {world.local_size}: out of range")
    return world


def rank_device(name: str, world: World) -> torch.device:
    """The torch device of this rank: `cuda` is the GPU of its LOCAL_RANK under torchrun."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and world.distributed:
        if device.index is not None:
            raise ValueError(f"--device {name}: under torchrun give --device cuda; each process takes the GPU "
                             "of its LOCAL_RANK")
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(f"{world.local_size} processes on this machine, {torch.cuda.device_count()} GPU(s): "
                             "start at most one process per GPU (--nproc-per-node)")
        device = torch.device("cuda", world.local_rank)
    return device


@contextmanager
def joined(device: str) -> Iterator[World]:
    """The process group for this process's training: joined when torchrun started it (gloo for the CPU,
    NCCL for CUDA), left at the end however the training ends."""
    world = world_from_env()
    if not world.distributed:
        yield world
        return
    dev = rank_device(device, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                            device_id=dev if dev.type == "cuda" else None)
    try:
        yield world
        # All ranks leave together: a rank that tore the group down while rank 0 still validated and
        # exported aborted in gloo's teardown ("terminate called without an active exception", once
        # in CI). On an error torchrun stops the other ranks, so that path does not wait here.
        dist.barrier()
    finally:
        dist.destroy_process_group()


class _Gather(torch.autograd.Function):
    """all_gather on the first axis, differentiable: the gradient of a rank's rows is the sum of every rank's
    gradient for them (an all_reduce of the whole gradient, of which each rank keeps its rows). Written out
    because torch's own (torch.distributed.nn) is deprecated and its successor needs reduce_scatter, which
    gloo lacks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def _collective_device() -> torch.device:
    """Where a collective's tensors live: NCCL's on this rank's GPU, gloo's on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
