"""The log-mel floor as a HEAR 2021 plugin: no learning, no weights, the baseline every table
compares with (``hear-suite eval`` adds it as ``logmel (floor)``).

- ``load_model(model_file_path=None, **options)``: no weights, so ``model_file_path`` must be
  None or empty. Option: ``max_frames`` (memory bound; results do not change).
- ``get_timestamp_embeddings(audio, model)``: ``(n, L)`` -> ``(n, T, 128)`` log-mel frames and
  ``(n, T)`` ms, frame ``k`` centred at ``10 k`` ms, ``T = L // 160 + 1``.
- ``get_scene_embeddings(audio, model)``: ``(n, L)`` -> ``(n, 256)``: mean and standard deviation
  of the frames over time.

Framing and padding: see :mod:`hear_suite.logmel.embedder`.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import Tensor

from hear_suite.hear_api import check_model, check_options
from hear_suite.logmel.embedder import LogMelEmbedder

OPTIONS = {"max_frames"}

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings", "LogMelEmbedder"]


def load_model(model_file_path: Optional[str] = None, **options: Any) -> LogMelEmbedder:
    """The log-mel floor in eval mode (on the CPU; move it with ``.to(device)``). Refuses a
    weights file rather than ignoring it: there is nothing to load."""
    if model_file_path:
        raise ValueError(f"hear_suite.logmel has no weights (it is the no-learning log-mel "
                         f"floor), got model_file_path={str(model_file_path)!r}; call "
                         f"load_model() without one")
    check_options("logmel", options, OPTIONS)
    return LogMelEmbedder(**options).eval()


def get_timestamp_embeddings(audio: Tensor, model: LogMelEmbedder) -> Tuple[Tensor, Tensor]:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(embeddings (n, T, 128),
    timestamps (n, T) in ms)``, float32 on the audio's device."""
    return check_model(model, LogMelEmbedder, "logmel").timestamp_embeddings(audio)


def get_scene_embeddings(audio: Tensor, model: LogMelEmbedder) -> Tensor:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(n, 256)`` float32."""
    return check_model(model, LogMelEmbedder, "logmel").scene_embeddings(audio)
