"""KW-MLP (Morshed et al.) as a HEAR 2021 plugin, numerically the ``kwmlp`` submission.

- ``load_model(model_file_path=None, **options)``: a hear_suite checkpoint or the original
  HEAR 2021 ``kwmlp.pth``; default ``weights/kwmlp_real.pt``. Options: ``scene_pooling``
  (``iterative_interpolation`` | ``single_interpolation`` | ``group_mean`` | ``mean_std``),
  ``tap_depth``
  (1..depth), ``embedding`` (``final`` | ``2level`` | ``2level+mel``; the last is also
  :mod:`hear_suite.kwmlp_2levelmel`), ``middle_depth``, ``max_chunks``.
- ``get_timestamp_embeddings(audio, model)``: ``(n, L)`` -> ``(n, T, 64)`` and ``(n, T)`` ms,
  one frame every 10 ms (``2level`` 128, ``2level+mel`` 256).
- ``get_scene_embeddings(audio, model)``: ``(n, L)`` -> ``(n, 1024)`` (``2level`` 2,048,
  ``2level+mel`` 512: every part pooled by mean and std over time, as the floor).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import Tensor

from hear_suite.hear_api import check_model, check_options
from hear_suite.kwmlp.embedder import KWMLPEmbedder
from hear_suite.kwmlp.io import load_encoder

OPTIONS = {"scene_pooling", "tap_depth", "embedding", "middle_depth", "max_chunks"}

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings", "KWMLPEmbedder"]


def load_model(model_file_path: Optional[str] = None, **options: Any) -> KWMLPEmbedder:
    """Load a KW-MLP embedding model in eval mode (on the CPU; move it with ``.to(device)``)."""
    check_options("kwmlp", options, OPTIONS)
    return KWMLPEmbedder(load_encoder(model_file_path), **options).eval()


def get_timestamp_embeddings(audio: Tensor, model: KWMLPEmbedder) -> Tuple[Tensor, Tensor]:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(embeddings (n, T,
    timestamp_embedding_size), timestamps (n, T) in ms)``, float32 on the audio's device."""
    return check_model(model, KWMLPEmbedder, "kwmlp").timestamp_embeddings(audio)


def get_scene_embeddings(audio: Tensor, model: KWMLPEmbedder) -> Tensor:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(n, scene_embedding_size)``
    float32."""
    return check_model(model, KWMLPEmbedder, "kwmlp").scene_embeddings(audio)
