"""The checks every HEAR submodule's three functions share (the submodules stay thin)."""
from __future__ import annotations

from typing import AbstractSet, Any, Mapping, Type, TypeVar

M = TypeVar("M")


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
