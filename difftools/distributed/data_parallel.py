"""Statistics summed over the ranks of a ``torch.distributed`` process group (DDP), exactly and in one collective."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["summed_over_ranks"]


def summed_over_ranks(
    count: Tensor, instances: Tensor | int, *, enabled: bool = True
) -> tuple[Tensor, Tensor | int]:
    """``(count, instances)`` summed over all ranks, or unchanged without an initialised process group.

    Both travel in ONE tensor, as exact int64 (a half-precision sum would round) or, for a
    fractional count, as float64, so a single all-reduce gives every rank the global batch's
    statistics; after it ``instances`` is a tensor. It runs inside backward, like SyncBatchNorm's
    collectives: every rank must backpropagate through the layer equally often (as DDP itself requires).
    """
    if not (enabled and dist.is_available() and dist.is_initialized()):
        return count, instances
    dtype = torch.float64 if count.is_floating_point() else torch.int64
    total = instances.to(dtype) if isinstance(instances, Tensor) else count.new_full((), instances, dtype=dtype)
    stats = torch.stack([count.to(dtype), total])
    dist.all_reduce(stats)
    return stats[0], stats[1]
