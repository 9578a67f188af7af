"""Scene pooling: turn frame embeddings ``(n, T, D)`` into a fixed-size scene vector.

The three algorithms of Morshed et al. (KW-MLP, Section 6.1). Each first brings ``T`` to
``steps`` frames and then flattens **feature-major** (output index = feature * steps + step),
the layout of the HEAR 2021 ``kwmlp`` submission. Clips with fewer than ``steps`` frames are
zero-padded at the end. And ``mean_std``, the log-mel floor's statistics: per feature the mean
and the population standard deviation over time (``2 D`` values, feature-major: index = feature
* 2 + {0: mean, 1: std}), merged in float64 by :class:`Moments`.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def _to_channels(frames: Tensor, steps: int) -> Tensor:
    """``(n, T, D)`` -> ``(n, D, max(T, steps))``, zero-padded at the end."""
    x = frames.transpose(1, 2)
    if x.shape[-1] < steps:
        x = F.pad(x, (0, steps - x.shape[-1]))
    return x


def _interpolate(x: Tensor, size: int) -> Tensor:
    return F.interpolate(x, size=size, mode="linear", align_corners=True)


def iterative_interpolation(frames: Tensor, steps: int = 16) -> Tensor:
    """Halve the time axis by linear interpolation (``align_corners=True``) ``floor(log2(T/steps))``
    times, then interpolate once more to exactly ``steps`` if ``log2(T/steps)`` is fractional.

    Halving step by step keeps more of the signal than one large down-sampling, where linear
    interpolation just picks a few frames (aliasing). ``(n, T, D)`` -> ``(n, D * steps)``.
    """
    x = _to_channels(frames, steps)
    t = x.shape[-1]
    if t > steps:
        ratio = math.log2(t / steps)
        size = t
        for _ in range(int(math.floor(ratio))):
            size //= 2
            x = _interpolate(x, size)
        if ratio != math.floor(ratio):
            x = _interpolate(x, steps)
    return x.flatten(1)


def single_interpolation(frames: Tensor, steps: int = 16) -> Tensor:
    """One linear interpolation straight to ``steps`` frames. ``(n, T, D)`` -> ``(n, D * steps)``."""
    x = _to_channels(frames, steps)
    if x.shape[-1] > steps:
        x = _interpolate(x, steps)
    return x.flatten(1)


def group_mean(frames: Tensor, steps: int = 16) -> Tensor:
    """Cut time into ``steps`` consecutive groups (sizes differ by at most one frame, the longer
    groups first) and average each. ``(n, T, D)`` -> ``(n, D * steps)``."""
    x = _to_channels(frames, steps)
    groups = torch.tensor_split(x, steps, dim=-1)
    return torch.stack([g.mean(-1) for g in groups], dim=-1).flatten(1)


class Moments:
    """Per-clip count, mean and sum of squared deviations of frames ``(clips, k, D)`` added
    block by block in float64 (the pairwise update of Chan et al., which avoids the cancellation
    of ``E[x^2] - E[x]^2`` and makes the block size irrelevant beyond rounding)."""

    def __init__(self, n: int, dim: int, device: torch.device) -> None:
        stats = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros(n, 1, **stats)
        self.mean = torch.zeros(n, dim, **stats)
        self.m2 = torch.zeros(n, dim, **stats)  # sum of squared deviations from the mean

    def add(self, clips: slice, x: Tensor) -> None:
        """Frames ``x (clips, k, D)`` of the clips ``clips``."""
        x = x.double()
        k = x.shape[1]
        block_mean = x.mean(dim=1)
        block_m2 = (x - block_mean[:, None]).square().sum(dim=1)
        total = self.count[clips] + k
        delta = block_mean - self.mean[clips]
        self.m2[clips] += block_m2 + delta.square() * self.count[clips] * k / total
        self.mean[clips] += delta * k / total
        self.count[clips] = total

    def mean_std(self) -> Tuple[Tensor, Tensor]:
        """``(mean, population std)``, each ``(n, D)`` float32."""
        return self.mean.float(), (self.m2 / self.count).sqrt().float()


def mean_std(frames: Tensor, steps: int = 16) -> Tensor:
    """Mean and population standard deviation over time, feature-major (``steps`` is unused:
    the size does not depend on it). ``(n, T, D)`` -> ``(n, D * 2)``."""
    stats = Moments(frames.shape[0], frames.shape[2], frames.device)
    stats.add(slice(None), frames)
    return torch.stack(stats.mean_std(), dim=-1).flatten(1).to(frames.dtype)


def values_per_feature(name: str, steps: int = 16) -> int:
    """Scene values per frame feature of the pooling ``name``: 2 for ``mean_std``, else ``steps``."""
    return 2 if name == "mean_std" else steps


SCENE_POOLING: Dict[str, Callable[[Tensor, int], Tensor]] = {
    "iterative_interpolation": iterative_interpolation,
    "single_interpolation": single_interpolation,
    "group_mean": group_mean,
    "mean_std": mean_std,
}


def get_scene_pooling(name: str) -> Callable[[Tensor, int], Tensor]:
    if name not in SCENE_POOLING:
        raise ValueError(f"unknown scene pooling {name!r}; choose one of {sorted(SCENE_POOLING)}")
    return SCENE_POOLING[name]
