"""Embedding one long clip block by block: the clip read on demand, pooling without holding it.

Every hear_suite embedder reads its input only through ``audio.shape``, ``audio[clips]`` and
:func:`hear_suite.audio.padded_chunks` (which slices ``audio[:, lo:hi]``), in blocks bounded by
its ``max_*`` option. A :class:`ClipSource` answers exactly those calls for one clip by reading
the samples each block needs, so the embedders' own block loops run unchanged over a file of
any length; their ``stream`` methods hand each block's timestamp embeddings to a callback and
keep only what the scene embedding needs (a running sum, statistics, or the state of
:class:`StreamingPooling`). Results equal the whole-clip calls: the same code computes the same
blocks.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from hear_suite.audio import check_audio, resample
from hear_suite.pooling import SCENE_POOLING, Moments

# (embeddings (k, D), timestamps (k,) ms) of consecutive timestamps, in order
TimestampSink = Callable[[Tensor, Tensor], None]


class ClipSource:
    """One clip of ``length`` samples, read on demand: it stands where an embedder expects a
    ``(1, length)`` tensor (``shape``, ``src[clips]``, ``src[:, lo:hi]``); ``read(lo, hi)``
    returns samples ``lo..hi-1`` as float32 ``(hi - lo,)``, ``0 <= lo <= hi <= length``. Every
    block read is checked for NaN and infinite values (:func:`hear_suite.audio.check_audio`)."""

    def __init__(self, length: int, read: Callable[[int, int], np.ndarray]) -> None:
        if length < 1:
            raise ValueError("audio is empty (0 samples)")
        self.length = length
        self._read = read

    @classmethod
    def of_tensor(cls, audio: Tensor) -> "ClipSource":
        """A 1-D tensor (or ``(1, L)``) as a source: for tests and for audio already in memory."""
        flat = audio.reshape(-1).float().cpu()
        return cls(flat.numel(), lambda lo, hi: flat[lo:hi].numpy())

    @property
    def shape(self) -> Tuple[int, int]:
        return (1, self.length)

    def __getitem__(self, key):
        if isinstance(key, slice):            # audio[clips]: the one clip
            return self
        clips, samples = key
        lo, hi, step = samples.indices(self.length)
        if step != 1:
            raise ValueError("a ClipSource reads contiguous samples only")
        block = torch.from_numpy(np.ascontiguousarray(self._read(lo, max(lo, hi)),
                                                      dtype=np.float32))[None]
        return check_audio(block) if block.numel() else block  # NaN / infinite: ValueError


def resampled_reader(read: Callable[[int, int], np.ndarray], n_in: int, orig_sr: int,
                     target_sr: int) -> Tuple[int, Callable[[int, int], np.ndarray]]:
    """Random access to ``hear_suite.audio.resample`` of a signal of ``n_in`` samples at
    ``orig_sr`` (read with ``read(lo, hi)``), at ``target_sr``: ``(length, read_resampled)``.

    ``resample_poly`` is a polyphase FIR filter: output sample ``j`` depends only on the input
    near ``j * down / up``. A block of output is the resampling of an input segment that starts
    on a multiple of ``down`` (so the polyphase phases line up) with a margin of the filter's
    half length on both sides; its samples equal those of the whole signal's resampling.
    """
    if orig_sr == target_sr:
        return n_in, read
    g = math.gcd(int(orig_sr), int(target_sr))
    up, down = int(target_sr) // g, int(orig_sr) // g
    n_out = -(-n_in * up // down)                                   # ceil, as resample_poly
    margin = 10 * max(up, down) // up + 2 * down + 2                # input samples, generous

    def read_resampled(lo: int, hi: int) -> np.ndarray:
        if hi <= lo:
            return np.zeros(0, np.float32)
        in_lo = max(0, (lo * down // up - margin) // down * down)
        in_hi = min(n_in, -(-hi * down // up) + margin)
        y = resample(read(in_lo, in_hi), orig_sr, target_sr)
        offset = in_lo * up // down
        return y[lo - offset:hi - offset]

    return n_out, read_resampled


def block_timestamps(start: int, stop: int, *, first_ms: float, hop_ms: float) -> Tensor:
    """Timestamps ``start..stop-1`` of :func:`hear_suite.audio.frame_timestamps` (same values)."""
    return (first_ms + hop_ms * torch.arange(start, stop, dtype=torch.float64)).float()


class _Lerp:
    """One ``F.interpolate(mode="linear", align_corners=True)`` from ``n_in`` to ``n_out`` frames
    over a stream: frames go in by :meth:`push` in order, output frames come out as soon as
    both their neighbours have arrived. Positions and weights as PyTorch's CPU kernel computes
    them (float32 scale ``(n_in - 1) / (n_out - 1)``, index ``floor(scale * j)``)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.n_in, self.n_out = n_in, n_out
        scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
        real = np.float32(scale) * np.arange(n_out, dtype=np.float32)
        self.i0 = np.minimum(np.floor(real).astype(np.int64), n_in - 1)
        self.i1 = self.i0 + (self.i0 < n_in - 1)
        lam = np.clip(real - self.i0.astype(np.float32), 0, 1).astype(np.float32)
        self.w0, self.w1 = torch.from_numpy(1 - lam), torch.from_numpy(lam)
        self.buffer: Optional[Tensor] = None      # frames held, the first one is frame `base`
        self.base = 0
        self.done = 0                             # output frames emitted

    def push(self, frames: Tensor) -> Tensor:
        """``frames (k, D)``, the next input frames -> the output frames now complete ``(m, D)``."""
        held = frames if self.buffer is None else torch.cat([self.buffer, frames])
        arrived = self.base + held.shape[0]
        stop = self.done
        while stop < self.n_out and self.i1[stop] < arrived:
            stop += 1
        j = slice(self.done, stop)
        i0 = torch.from_numpy(self.i0[j] - self.base)
        i1 = torch.from_numpy(self.i1[j] - self.base)
        out = (held[i0] * self.w0[j, None].to(held) + held[i1] * self.w1[j, None].to(held))
        self.done = stop
        # the first frame still needed (or the end of what arrived, if it is still to come)
        keep = min(int(self.i0[stop]), arrived) if stop < self.n_out else arrived
        self.buffer, self.base = held[keep - self.base:], keep
        return out


class StreamingPooling:
    """:mod:`hear_suite.pooling`'s scene pooling of ``total`` frames ``(T, D)`` pushed in blocks
    (:meth:`push`), without holding them: iterative interpolation is a cascade of
    :class:`_Lerp` halvings (the same sizes as :func:`~hear_suite.pooling.iterative_interpolation`),
    single interpolation one :class:`_Lerp`, group mean running sums, mean and std running
    :class:`~hear_suite.pooling.Moments`. :meth:`result` gives the feature-major vector
    (``(D * steps,)``; ``(D * 2,)`` for ``mean_std``), equal to the pooling of all frames at
    once within float32 rounding."""

    def __init__(self, name: str, total: int, steps: int = 16) -> None:
        if name not in SCENE_POOLING:
            raise ValueError(f"unknown scene pooling {name!r}; choose one of "
                             f"{sorted(SCENE_POOLING)}")
        if total < 1:
            raise ValueError("nothing to pool: 0 frames")
        self.name, self.total, self.steps = name, total, steps
        self.seen = 0
        self.stages: List[_Lerp] = []
        size = max(total, steps)
        if name == "iterative_interpolation" and size > steps:
            ratio = math.log2(size / steps)
            for _ in range(int(math.floor(ratio))):
                self.stages.append(_Lerp(size, size // 2))
                size //= 2
            if ratio != math.floor(ratio):
                self.stages.append(_Lerp(size, steps))
        elif name == "single_interpolation" and size > steps:
            self.stages.append(_Lerp(size, steps))
        if name == "group_mean":  # group g: frames of tensor_split's g-th piece
            bounds = np.cumsum([0] + [len(p) for p in np.array_split(np.arange(size), steps)])
            self.group_of = np.searchsorted(bounds, np.arange(size), side="right") - 1
            self.sizes = torch.from_numpy(np.diff(bounds)).double()
        self.outputs: List[Tensor] = []
        self.sums: Optional[Tensor] = None
        self.moments: Optional[Moments] = None

    def push(self, frames: Tensor) -> None:
        """The next frames ``(k, D)`` (at most ``total`` in all)."""
        if self.seen + frames.shape[0] > self.total:
            raise ValueError(f"more than the {self.total} frames announced")
        start, self.seen = self.seen, self.seen + frames.shape[0]
        if self.name == "mean_std":                                  # no padding: statistics
            if self.moments is None:
                self.moments = Moments(1, frames.shape[1], frames.device)
            self.moments.add(slice(None), frames[None])
            return
        if self.seen == self.total and self.total < self.steps:   # zero-padded to `steps`
            frames = torch.cat([frames, frames.new_zeros(self.steps - self.total, frames.shape[1])])
        if self.name == "group_mean":
            groups = torch.from_numpy(self.group_of[start:start + frames.shape[0]])
            if self.sums is None:
                self.sums = frames.new_zeros((self.steps, frames.shape[1]), dtype=torch.float64)
            self.sums.index_add_(0, groups, frames.double())
            return
        for stage in self.stages:
            frames = stage.push(frames)
        self.outputs.append(frames)

    def result(self) -> Tensor:
        if self.seen != self.total:
            raise ValueError(f"{self.seen} of {self.total} frames pushed")
        if self.name == "mean_std":
            return torch.stack(self.moments.mean_std(), dim=-1).reshape(-1)
        if self.name == "group_mean":
            pooled = (self.sums / self.sizes[:, None]).float()
        else:
            pooled = torch.cat(self.outputs)
        return pooled.T.reshape(-1)                              # feature-major: (D * steps,)
