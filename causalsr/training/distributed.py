"""Data-parallel training under torchrun: process group, gradient averaging, agreement flags.

Gradients are averaged by hand after the single backward pass instead of
wrapping the model in DistributedDataParallel: the Objective calls many model
methods (posterior, prior, restorer, mechanism, heads) rather than one
`forward`, and which parameters get gradients changes with the step (Algorithm 1
runs every `cf_every` steps). One flat all-reduce of the gradients of the same
global batch gives exactly DDP's result. Every rank takes `batch/world` samples
of the same global batch, so a run matches a 1-process run with that batch.

A rank that dies makes the others fail at their next collective (gloo raises
on the broken connection; otherwise the process-group timeout fires); that
error is turned into a one-line `DistributedError`.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


class DistributedError(RuntimeError):
    """A collective failed: another process probably died or hung."""


@dataclass
class DistContext:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _run(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, dist.DistError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DistributedError(
                f"rank {self.rank}/{self.world_size}: {what} failed ({first}); another training process "
                "probably died or hung - see its log above") from None

    def barrier(self) -> None:
        if self.enabled:
            self._run("barrier", dist.barrier)

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of a tensor over ranks (in place, returned)."""
        if self.enabled:
            self._run("all_reduce", dist.all_reduce, values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (identical start)."""
        if self.enabled:
            for t in list(module.parameters()) + list(module.buffers()):
                self._run("broadcast", dist.broadcast, t.data, src=0)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average `.grad` over ranks with one flat all-reduce.

        A parameter without a gradient on some rank contributes zeros there; one
        with no gradient on any rank keeps `grad=None`, as in a 1-process run.
        """
        if not self.enabled or not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=self.device)
        used = [p for p, h in zip(params, self.all_sum(has).bool().tolist()) if h]
        grads = []
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        if not used:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.all_sum(flat).div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(timeout_minutes: float = 30.0) -> DistContext:
    """Join the torchrun job described by RANK/WORLD_SIZE/LOCAL_RANK (else a 1-process context).

    Uses NCCL with one GPU per local rank when CUDA is available, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return DistContext(device=torch.device("cuda", local_rank) if cuda else torch.device("cpu"))
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=device)
