"""Augmentation: :func:`spec_augment` masks time and frequency bands of ``(B, F, T)`` features
(bands drawn on the CPU, so a seed gives the same masks on any device), with its arguments
(:func:`add_spec_augment_arguments`, :func:`spec_augment_problems`,
:func:`spec_augment_from_args`)."""
from __future__ import annotations

import argparse
from typing import Any, List, Optional

import torch
from torch import Tensor


def add_spec_augment_arguments(group: Any, *, time_width: int, freq_width: int,
                               freq_help: str) -> None:
    """``--time-masks``, ``--time-mask-width``, ``--freq-masks``, ``--freq-mask-width`` (2 masks
    per axis by default) for :func:`spec_augment_from_args`; counts and widths must be >= 0."""
    group.add_argument("--time-masks", type=int, default=2)
    group.add_argument("--time-mask-width", type=int, default=time_width,
                       help="max frames per time mask")
    group.add_argument("--freq-masks", type=int, default=2)
    group.add_argument("--freq-mask-width", type=int, default=freq_width, help=freq_help)



def spec_augment_problems(args: argparse.Namespace) -> List[str]:
    if min(args.time_masks, args.time_mask_width, args.freq_masks, args.freq_mask_width) < 0:
        return ["SpecAugment mask counts and widths must be >= 0"]
    return []



def _band_mask(batch: int, size: int, n_masks: int, max_width: int,
               generator: Optional[torch.Generator]) -> Tensor:
    """``(batch, size)`` bool: ``n_masks`` bands per row, width uniform in ``0..max_width``."""
    mask = torch.zeros(batch, size, dtype=torch.bool)
    pos = torch.arange(size)
    for _ in range(n_masks):
        width = torch.randint(0, min(max_width, size) + 1, (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (size - width + 1)).long()
        mask |= (pos >= start) & (pos < start + width)
    return mask



def spec_augment(x: Tensor, *, time_masks: int, time_width: int, freq_masks: int,
                 freq_width: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """SpecAugment masking of features ``x (B, F, T)``: per example, ``time_masks`` bands of
    0..``time_width`` frames and ``freq_masks`` bands of 0..``freq_width`` bins set to 0.

    The bands are drawn on the CPU (from ``generator`` or torch's global RNG), so the same seed
    gives the same masks on any device. Returns a new tensor of the same shape.
    """
    if x.ndim != 3:
        raise ValueError(f"spec_augment expects (batch, freq, time), got shape {tuple(x.shape)}")
    b, f, t = x.shape
    keep = ~(_band_mask(b, t, time_masks, time_width, generator)[:, None, :]
             | _band_mask(b, f, freq_masks, freq_width, generator)[:, :, None])
    return x * keep.to(device=x.device, dtype=x.dtype)



def spec_augment_from_args(x: Tensor, args: argparse.Namespace) -> Tensor:
    """:func:`spec_augment` with the masks of :func:`add_spec_augment_arguments`."""
    return spec_augment(x, time_masks=args.time_masks, time_width=args.time_mask_width,
                        freq_masks=args.freq_masks, freq_width=args.freq_mask_width)

