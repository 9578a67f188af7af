"""The Audio Spectrogram Transformer with the positional encodings of seed 003, as a HEAR plugin.

- ``load_model(model_file_path=None, **options)``: a hear_suite ``ast`` checkpoint (default the
  shipped ``weights/ast_real128.pt``, conditional PE on 128 mel bands, trained on real and
  synthetic label sets; ``ast_real.pt``: the same on 64 bands, the default until issue 18;
  ``ast_conditional.pt``/``ast_absolute.pt``: the PE-study pair), or a published AST: an
  original ``.pth`` of Gong et al. (``audioset_10_10_0.4593.pth``, ...) or a Hugging Face
  ``ASTForAudioClassification`` directory (:mod:`hear_suite.ast.io`). The positional encoding,
  frontend and every other hyperparameter come from the checkpoint. Options:
  ``scene_embedding`` (``cls`` | ``patch_mean``), ``embedding`` (``final`` | ``2level`` |
  ``2level+mel``; the last is also :mod:`hear_suite.ast_2levelmel`), ``middle_depth`` (default
  three quarters of the depth), ``max_windows`` (windows encoded at once),
  ``timestamp_hop_ms`` (a divisor of the column hop: 160, 80, 40 ms; one encoder pass per step).
- ``get_timestamp_embeddings(audio, model)``: ``(n, L)`` -> ``(n, T, dim)`` and ``(n, T)`` ms, one
  embedding per patch column at the column's centre (every 320 ms for the shipped models, every
  100 ms from 87.5 ms for the published ones); with ``timestamp_hop_ms`` (default 80 ms for
  ``2level+mel``) also between them, from shifted passes.
- ``get_scene_embeddings(audio, model)``: ``(n, L)`` -> ``(n, dim)``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import Tensor

from hear_suite.hear_api import check_model, check_options
from hear_suite.ast.embedder import ASTEmbedder
from hear_suite.ast.io import load_encoder
from hear_suite.ast.model import AST, ASTConfig

OPTIONS = {"scene_embedding", "embedding", "middle_depth", "max_windows", "timestamp_hop_ms"}

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings", "ASTEmbedder",
           "AST", "ASTConfig"]


def load_model(model_file_path: Optional[str] = None, **options: Any) -> ASTEmbedder:
    """Load an AST embedding model in eval mode (on the CPU; move it with ``.to(device)``)."""
    check_options("ast", options, OPTIONS)
    return ASTEmbedder(load_encoder(model_file_path), **options).eval()


def get_timestamp_embeddings(audio: Tensor, model: ASTEmbedder) -> Tuple[Tensor, Tensor]:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(embeddings (n, T,
    timestamp_embedding_size), timestamps (n, T) in ms)``, float32 on the audio's device."""
    return check_model(model, ASTEmbedder, "ast").timestamp_embeddings(audio)


def get_scene_embeddings(audio: Tensor, model: ASTEmbedder) -> Tensor:
    """``audio (n_sounds, n_samples)`` float at 16 kHz -> ``(n, scene_embedding_size)``
    float32."""
    return check_model(model, ASTEmbedder, "ast").scene_embeddings(audio)
