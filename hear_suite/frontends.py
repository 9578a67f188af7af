"""Spectral frontends as nnAudio layers: ``nn.Module``s built from a checkpoint's config, so they
move to the model's device with ``.to(device)`` and run there (GPU when present)."""
from __future__ import annotations

import contextlib
import io

from torch import nn


def _quiet(build):
    # nnAudio prints kernel-creation messages even with verbose=False in some versions.
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


def mfcc(*, sample_rate: int, n_mfcc: int, n_mels: int, n_fft: int, win_length: int,
         hop_length: int, center: bool = False) -> nn.Module:
    """nnAudio MFCC: ``(n, samples)`` -> ``(n, n_mfcc, frames)``; Hann window, power mel
    spectrogram in dB (ref 1, amin 1e-10, top_db 80 per item) and orthonormal DCT-II."""
    from nnAudio.features import MFCC

    return _quiet(lambda: MFCC(sr=sample_rate, n_mfcc=n_mfcc, n_mels=n_mels, n_fft=n_fft,
                               win_length=win_length, hop_length=hop_length, center=center,
                               verbose=False))
