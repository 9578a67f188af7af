"""Bag of codes with ``embedding="2level+mel"`` as a HEAR module of its own, for tools that take a
module name only (stock heareval, ``hear-validator hear_suite.bagofcodes_2levelmel``): the final and a
middle level of the model and the log-mel floor's frames, see :mod:`hear_suite.bagofcodes`."""
from __future__ import annotations

from typing import Any, Optional

from hear_suite import bagofcodes as _family
from hear_suite.bagofcodes import get_scene_embeddings, get_timestamp_embeddings
from hear_suite.hear_api import with_embedding

__all__ = ["load_model", "get_timestamp_embeddings", "get_scene_embeddings"]


def load_model(model_file_path: Optional[str] = None, **options: Any):
    """:func:`hear_suite.bagofcodes.load_model` with ``embedding="2level+mel"``."""
    return _family.load_model(model_file_path, **with_embedding("2level+mel", options))
