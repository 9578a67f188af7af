"""A toy HEAR plugin for fast tests: log power spectrum of 25 ms frames every 20 ms, reduced to
32 log-spaced bands; scene embedding = mean and std over frames (64-d). No trained weights.

``load_model(model_file_path=None, *, n_bands=32)``: ``model_file_path`` is accepted for the
HEAR signature and must be None or an existing file (its content is ignored).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

SAMPLE_RATE = 16000
WIN, HOP = 400, 320  # 25 ms window, 20 ms hop


class ToyModel(nn.Module):
    sample_rate = SAMPLE_RATE

    def __init__(self, n_bands: int = 32) -> None:
        super().__init__()
        n_bins = WIN // 2 + 1
        edges = torch.logspace(math.log10(2), math.log10(n_bins - 1), n_bands + 1)
        fb = torch.zeros(n_bands, n_bins)
        for b in range(n_bands):
            lo, hi = int(edges[b]), max(int(edges[b + 1]), int(edges[b]) + 1)
            fb[b, lo:hi] = 1.0 / (hi - lo)
        self.register_buffer("filterbank", fb)
        self.register_buffer("window", torch.hann_window(WIN))
        self.timestamp_embedding_size = n_bands
        self.scene_embedding_size = 2 * n_bands


def load_model(model_file_path: Optional[str] = None, n_bands: int = 32) -> ToyModel:
    if model_file_path is not None and not os.path.isfile(model_file_path):
        raise FileNotFoundError(model_file_path)
    return ToyModel(int(n_bands))


def get_timestamp_embeddings(audio: Tensor, model: ToyModel) -> Tuple[Tensor, Tensor]:
    """``(n, L)`` -> ``(n, T, n_bands)``, timestamps ``(n, T)`` ms at frame centres."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got {tuple(audio.shape)}")
    audio = audio.float()
    n, length = audio.shape
    padded = nn.functional.pad(audio, (WIN // 2, WIN // 2))
    frames = padded.unfold(1, WIN, HOP)                       # (n, T, WIN), centred on k * HOP
    frames = frames[:, : length // HOP + 1]
    power = torch.fft.rfft(frames * model.window, dim=-1).abs() ** 2
    emb = torch.log(power @ model.filterbank.T + 1e-6)
    ts = torch.arange(emb.shape[1], device=audio.device, dtype=torch.float32) * (1000 * HOP / SAMPLE_RATE)
    return emb.float(), ts.expand(n, -1).contiguous()


def get_scene_embeddings(audio: Tensor, model: ToyModel) -> Tensor:
    """``(n, L)`` -> ``(n, 2 * n_bands)``: mean and std of the frame embeddings."""
    emb, _ = get_timestamp_embeddings(audio, model)
    return torch.cat([emb.mean(1), emb.std(1)], dim=1)
