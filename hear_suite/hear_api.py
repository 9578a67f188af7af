"""The checks every HEAR submodule's three functions share (the submodules stay thin)."""
from __future__ import annotations

from typing import AbstractSet, Any, Mapping, Optional, Type, TypeVar

M = TypeVar("M")

# What a model's embeddings hold (the ``embedding`` option of every learned model), after
# PaSST's HEAR plugins (base, base2level, base2levelmel):
# - "final": the model's output, unchanged;
# - "2level": [final | a middle depth], the middle one layer-normalised like the final;
# - "2level+mel": [final | middle | the floor's log-mel at the same timestamps],
#   the scene [final | middle | the floor's scene (mean and std of the log-mel frames)], the
#   floor's parts scaled by MEL_SCALE: no
#   variant knows less than the floor (hear_suite.logmel).
# The parts are concatenated in that order, so each variant begins with the one before it.
EMBEDDINGS = ("final", "2level", "2level+mel")
# The log-mel part of a "2level+mel" embedding is the floor's divided by 4, about the spread of
# log-mel values over frames (per-band std 3.2-3.5 on the real suite's training audio), so that
# every part has about unit spread like the layer-normalised levels: heareval's probe does not
# standardise its input, and raw log-mel values (-14..5) dominated its training. Measured with
# kwmlp 2level+mel on the real suite (results/real_suite.md): event onset F 0.38 raw, 0.64
# divided by 4; speaker identity 0.70 raw, 0.92 divided by 4.
MEL_SCALE = 0.25


def check_options(family: str, options: Mapping[str, Any], valid: AbstractSet[str]) -> None:
    """``load_model`` options are keyword arguments (heareval's ``--model-options``): refuse the
    unknown ones instead of ignoring them silently."""
    unknown = set(options) - set(valid)
    if unknown:
        raise ValueError(f"unknown {family} option(s) {sorted(unknown)}; valid: {sorted(valid)}")


def check_model(model: Any, cls: Type[M], family: str) -> M:
    """The ``model`` argument of ``get_*_embeddings`` must come from that module's
    ``load_model``."""
    if not isinstance(model, cls):
        raise ValueError(f"model must come from hear_suite.{family}.load_model, got "
                         f"{type(model).__name__}")
    return model


def check_levels(embedding: str, middle_depth: Optional[int], *, deepest: int,
                 what: str) -> Optional[int]:
    """Validate the ``embedding`` / ``middle_depth`` options: the middle level is taken after
    ``what`` ``middle_depth`` of ``1..deepest``. Returns it (None for ``final``, which taps
    nothing)."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    if embedding == "final":
        return None
    if (not isinstance(middle_depth, int) or isinstance(middle_depth, bool)
            or not 1 <= middle_depth <= deepest):
        raise ValueError(f"middle_depth must be an int in 1..{deepest} (the {what} after which "
                         f"the middle level is taken), got {middle_depth!r}")
    return middle_depth


def with_embedding(embedding: str, options: Mapping[str, Any]) -> dict:
    """``options`` plus ``embedding``, for the modules named after a variant
    (``hear_suite.kwmlp_2levelmel``): they refuse another ``embedding``."""
    if options.get("embedding", embedding) != embedding:
        raise ValueError(f"this module's embedding is {embedding!r}; for "
                         f"{options['embedding']!r} load the model family's own module")
    return {**options, "embedding": embedding}
