"""Bag of codes (Verma, "A Bag of Codes ... without convolutions or transformers") as a HEAR
2021 plugin: the histogram of k-means codes of four autoencoded views of a log-mel second.

- ``load_model(model_file_path=None, **options)``: a hear_suite ``bagofcodes`` checkpoint;
  default ``weights/bagofcodes_real.pt``. Options: ``timestamp_hop_ms`` (10, 20, 50; default 50),
  ``timestamp_window_ms`` (multiple of 100; default 1000), ``histogram_scaling`` (``counts`` |
  ``sqrt`` | ``log1p``; ``log1p`` by default for ``2level+mel``, else ``counts``), ``embedding`` (``final`` | ``2level`` | ``2level+mel``; the last is also
  :mod:`hear_suite.bagofcodes_2levelmel`), ``middle_depth``, ``max_frames`` (memory bound).
- ``get_timestamp_embeddings(audio, model)``: ``(n, L)`` -> ``(n, T, 4 D)`` and ``(n, T)`` ms:
  the bag of codes of the window centred on each timestamp, one every ``timestamp_hop_ms``.
- ``get_scene_embeddings(audio, model)``: ``(n, L)`` -> ``(n, 4 D)``: per-second bag of codes.

Edges and short clips: see :mod:`hear_suite.bagofcodes.embedder`.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import Tensor

from hear_suite.hear_api import check_model, check_options
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder
from hear_suite.bagofcodes.io import load_bagofcodes

OPTIONS = {"timestamp_hop_ms", "timestamp_window_ms", "histogram_scaling", "embedding",
           "middle_depth", "max_frames"}

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings", "BagOfCodesEmbedder"]


def load_model(model_file_path: Optional[str] = None, **options: Any) -> BagOfCodesEmbedder:
    """Load a bag-of-codes embedding model in eval mode (on the CPU; move it with ``.to``)."""
    check_options("bagofcodes", options, OPTIONS)
    return BagOfCodesEmbedder(load_bagofcodes(model_file_path), **options).eval()


def get_timestamp_embeddings(audio: Tensor, model: BagOfCodesEmbedder) -> Tuple[Tensor, Tensor]:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(embeddings (n, T,
    timestamp_embedding_size), timestamps (n, T) in ms)``, float32 on the audio's device."""
    return check_model(model, BagOfCodesEmbedder, "bagofcodes").timestamp_embeddings(audio)


def get_scene_embeddings(audio: Tensor, model: BagOfCodesEmbedder) -> Tensor:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(n, scene_embedding_size)``
    float32."""
    return check_model(model, BagOfCodesEmbedder, "bagofcodes").scene_embeddings(audio)
