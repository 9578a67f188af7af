"""Audio input checks, padded chunking, timestamps and resampling: the HEAR plumbing every model
shares."""
from __future__ import annotations

import math
from typing import Iterator, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def check_audio(audio: Tensor) -> Tensor:
    """Validate HEAR input audio and return it as float32 (on its own device).

    ``audio``: ``(n_sounds, n_samples)`` floating point, mono, in [-1, 1]. Raises ``ValueError``
    naming the problem for 1-D or 3-D input, integer/complex dtypes, empty clips and NaN/inf.
    """
    if not isinstance(audio, Tensor):
        raise ValueError(f"audio must be a torch.Tensor of shape (n_sounds, n_samples), "
                         f"got {type(audio).__name__}")
    if audio.ndim != 2:
        raise ValueError(f"audio must be 2-D (n_sounds, n_samples), got {audio.ndim}-D shape "
                         f"{tuple(audio.shape)}" + (" (add a batch axis: audio[None])"
                                                    if audio.ndim == 1 else ""))
    if not audio.is_floating_point():
        raise ValueError(f"audio must be a floating point tensor in [-1, 1], got dtype {audio.dtype}")
    if audio.shape[0] == 0:
        raise ValueError("audio batch is empty (n_sounds == 0)")
    if audio.shape[1] == 0:
        raise ValueError("audio clips are empty (n_samples == 0)")
    # one reduction pass without temporaries (torch.isfinite makes four passes and a mask):
    # a NaN propagates to both ends, an infinity is one of them
    low, high = torch.aminmax(audio)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("audio contains NaN or infinite values")
    return audio.float()


def num_chunks(n_samples: int, chunk: int) -> int:
    """Number of ``chunk``-sample chunks after right-padding to a whole number (at least one)."""
    return max(1, math.ceil(n_samples / chunk))


def padded_chunks(audio: Tensor, *, chunk: int, pad_front: int, start: int, stop: int) -> Tensor:
    """Chunks ``start..stop-1`` of every clip, as if each clip had ``pad_front`` zeros in front and
    enough zeros at the end; the padded audio is never materialised (memory stays flat).

    ``audio``: ``(n, L)``. Returns ``(n, stop - start, chunk)``.
    """
    n, length = audio.shape
    lo, hi = start * chunk - pad_front, stop * chunk - pad_front
    piece = audio[:, max(lo, 0):max(min(hi, length), 0)]
    left = max(0, -lo)
    right = (hi - lo) - left - piece.shape[1]
    piece = F.pad(piece, (left, right))
    return piece.reshape(n, stop - start, chunk)


def chunk_slices(n_clips: int, n_chunks: int, max_chunks: int) -> Iterator[Tuple[slice, slice]]:
    """Blocks ``(clips, chunks)`` covering an ``n_clips x n_chunks`` grid with at most
    ``max_chunks`` cells each (at least one chunk per block), in clip-then-chunk order."""
    per_clip = max(1, min(n_chunks, max_chunks))
    clips_per_block = max(1, max_chunks // per_clip)
    for c0 in range(0, n_clips, clips_per_block):
        for j0 in range(0, n_chunks, per_clip):
            yield slice(c0, min(c0 + clips_per_block, n_clips)), slice(j0, min(j0 + per_clip, n_chunks))


def frame_timestamps(n_clips: int, n_frames: int, *, first_ms: float, hop_ms: float,
                     device: torch.device | str = "cpu") -> Tensor:
    """Timestamps (ms) ``first_ms + hop_ms * k`` for k < n_frames, shape ``(n_clips, n_frames)``."""
    row = first_ms + hop_ms * torch.arange(n_frames, dtype=torch.float64, device=device)
    return row.float().expand(n_clips, n_frames).contiguous()


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) of float audio ``(..., samples)``
    from ``orig_sr`` to ``target_sr`` Hz, float32: the one resampler of the package (training
    data, generated tasks, evaluation)."""
    from scipy.signal import resample_poly

    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    g = math.gcd(int(orig_sr), int(target_sr))
    return resample_poly(audio, target_sr // g, orig_sr // g, axis=-1).astype(np.float32)
