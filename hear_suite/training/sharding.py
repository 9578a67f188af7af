"""Data order: :func:`shard_indices` is a deterministic ``DistributedSampler`` (one permutation
per epoch shared by every rank, one equal-length slice per rank; the streams of
:mod:`hear_suite.data` build on it), :func:`split_rank` a disjoint share for evaluation, and
:func:`batches` cuts indices into batches."""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor

from hear_suite.training.seeding import derive_seed


def shard_indices(n: int, *, rank: int, world_size: int, epoch: int, seed: int,
                  shuffle: bool = True) -> Tensor:
    """This rank's sample indices for ``epoch``: ``(ceil(n / world_size),)`` int64.

    Like ``DistributedSampler``: one permutation of ``range(n)`` from ``(seed, epoch)``, shared by
    all ranks, padded by wrapping to a multiple of ``world_size`` (so every rank runs the same
    number of steps), then every ``world_size``-th index from ``rank``. Independent of the
    global RNG, so it neither consumes nor depends on it.
    """
    if n < 1:
        raise ValueError("cannot shard an empty dataset")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    if shuffle:
        g = torch.Generator().manual_seed(derive_seed(seed, epoch))
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if total > n:
        order = torch.cat([order, order.repeat(math.ceil((total - n) / n))[: total - n]])
    return order[rank:total:world_size]



def split_rank(n: int, *, rank: int, world_size: int) -> Tensor:
    """Indices ``rank, rank + world_size, ...`` of ``range(n)``: a disjoint, unpadded share for
    evaluation (sum the ranks' results with :func:`all_reduce_sum`)."""
    return torch.arange(rank, n, world_size)



def batches(indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Consecutive slices of ``indices`` of ``batch_size`` (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    yield from indices.split(batch_size)

