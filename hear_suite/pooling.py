"""Scene pooling: turn frame embeddings ``(n, T, D)`` into a fixed-size scene vector.

The three algorithms of Morshed et al. (KW-MLP, Section 6.1). Each first brings ``T`` to
``steps`` frames and then flattens **feature-major** (output index = feature * steps + step),
the layout of the HEAR 2021 ``kwmlp`` submission. Clips with fewer than ``steps`` frames are
zero-padded at the end.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

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


SCENE_POOLING: Dict[str, Callable[[Tensor, int], Tensor]] = {
    "iterative_interpolation": iterative_interpolation,
    "single_interpolation": single_interpolation,
    "group_mean": group_mean,
}


def get_scene_pooling(name: str) -> Callable[[Tensor, int], Tensor]:
    if name not in SCENE_POOLING:
        raise ValueError(f"unknown scene pooling {name!r}; choose one of {sorted(SCENE_POOLING)}")
    return SCENE_POOLING[name]
