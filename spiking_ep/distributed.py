"""Data-parallel training with torch.distributed (launch with ``torchrun --nproc_per_node N``).

Every process runs the same training loop on the same global mini-batch order (the permutation,
augmentation and dropout masks are drawn from the same seeded generators on every rank, for the
whole global batch of ``train.batch_size`` examples), and computes the gradient estimate on its
share of the batch: the examples whose index i satisfies i mod world_size = rank. The estimates
are then combined

    g = Σ_r (n_r / n) g_r        (an all-reduce of n_r g_r, divided by n = Σ_r n_r)

which is the estimate for the whole batch, because every method's estimate (EP's symmetric or
one-sided difference of ∂Φ/∂θ, BPTT's gradient of the mean loss, the spiking rules) is a mean
over examples. Every rank then applies the same optimiser step, so the weights stay identical on
all ranks and equal a single-process run with the same global batch (up to the summation order).

Warm-start states are sharded by example: a rank only ever relaxes the examples i ≡ rank, so it
keeps and checkpoints only theirs (``particles-rank<r>.pt`` beside the checkpoint). Rank 0 writes
the run folder (config, metrics, summary, weights, checkpoint); the other ranks write nothing else.
Backends: NCCL on CUDA, gloo on the CPU (the tests run 2 gloo processes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` (world 1: not distributed)."""
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes (env ``WORLD_SIZE`` > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def local_device(device: torch.device, d: Dist) -> torch.device:
    """One GPU per process on a node (``LOCAL_RANK``); the CPU stays the CPU."""
    if d.enabled and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(idx: Tensor, d: Dist) -> Tensor:
    """Positions (in the global batch) of the examples this rank relaxes: index mod world = rank."""
    if not d.enabled:
        return torch.arange(len(idx))
    return torch.nonzero(idx % d.world == d.rank).flatten()


def average_gradients(grads: dict[str, Tensor], n_local: int, n_global: int, d: Dist) -> dict[str, Tensor]:
    """Σ_r (n_r / n) g_r over ranks (see the module docstring); identity for one process."""
    if not d.enabled:
        return grads
    import torch.distributed as dist
    out = {}
    for k, g in grads.items():
        t = g * (n_local / n_global)
        dist.all_reduce(t)
        out[k] = t
    return out


def all_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Element-wise sum over ranks of a list of numbers (counts, flags, error sums)."""
    if not d.enabled:
        return values
    import torch.distributed as dist
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj, d: Dist):
    """Rank 0's ``obj`` on every rank (e.g. the run folder's name)."""
    if not d.enabled:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist
        dist.barrier()


def particles_file(rank: int) -> str:
    return f"particles-rank{rank}.pt"
