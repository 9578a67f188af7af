"""Checkpoint files of hear_suite: one self-describing dict, saved atomically, loaded safely.

A model checkpoint is ``torch.save`` of::

    {"format": "hear_suite", "format_version": 1, "family": "kwmlp",
     "config": {...},            # everything needed to rebuild the model (plain Python values)
     "state_dict": {...},        # tensors
     "provenance": {...}}        # how it was made: command, corpus, epochs, scores, date

so ``load_model(path)`` needs nothing else and refuses a file made for another model family.
Everything is read with ``torch.load(..., weights_only=True)``: no arbitrary unpickling.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

FORMAT = "hear_suite"
FORMAT_VERSION = 1
PathLike = Union[str, Path]


def save_atomic(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_file(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise RuntimeError(f"checkpoint {path} is empty (0 bytes)")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PK..); very old files are a bare pickle stream (0x80).
    looks_like_torch = magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        text = str(e)
        reason = next((line.strip() for line in text.splitlines() if "Unsupported" in line),
                      text.splitlines()[0] if text else type(e).__name__)
        if not looks_like_torch:
            raise RuntimeError(f"{path} is not a torch checkpoint ({reason})") from e
        if "Unsupported global" in text:
            raise RuntimeError(
                f"checkpoint {path} contains pickled Python objects that hear_suite will not "
                f"unpickle (only tensors and plain values are allowed): {reason}") from e
        raise RuntimeError(f"checkpoint {path} is truncated or corrupt ({reason})") from e


def save_checkpoint(path: PathLike, *, family: str, config: Dict[str, Any],
                    state_dict: Dict[str, torch.Tensor],
                    provenance: Optional[Dict[str, Any]] = None) -> None:
    """Save a model checkpoint of ``family`` (atomically). Tensors are stored on the CPU."""
    save_atomic({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "provenance": dict(provenance or {}),
    }, path)


def is_hear_suite_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def check_family(obj: Any, family: str, path: PathLike) -> Dict[str, Any]:
    """Return ``obj`` if it is a hear_suite checkpoint of ``family``, else raise ``ValueError``."""
    if not is_hear_suite_checkpoint(obj):
        raise ValueError(f"{path} is not a hear_suite checkpoint (expected a {family!r} model)")
    if obj.get("family") != family:
        raise ValueError(f"{path} holds a {obj.get('family')!r} model, not a {family!r} model")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {obj['format_version']}, newer than this "
                         f"hear_suite understands ({FORMAT_VERSION}): upgrade hear_suite")
    return obj


def load_checkpoint(path: PathLike, family: str) -> Dict[str, Any]:
    """Load a hear_suite checkpoint and check it belongs to ``family``."""
    return check_family(load_file(path), family, path)


def resolve_weights(path: Union[str, Path, None], default: str) -> Path:
    """The file ``load_model(path)`` reads: ``path`` itself; the shipped ``default`` when
    ``path`` is None or empty; a shipped file when ``path`` is a bare name of one (e.g.
    ``"ast_absolute.pt"``) and no such file exists in the working directory."""
    if not path:
        return default_weights(default)
    path = Path(path)
    if not path.exists() and path.name == str(path):
        try:
            return default_weights(path.name)
        except FileNotFoundError:
            pass
    return path


def default_weights(filename: str) -> Path:
    """Path of a shipped weights file: ``hear_suite.weights`` when installed, else ``weights/``."""
    try:
        installed = Path(str(resources.files("hear_suite.weights") / filename))
        if installed.is_file():
            return installed
    except ModuleNotFoundError:
        pass
    source_tree = Path(__file__).resolve().parent.parent / "weights" / filename
    if source_tree.is_file():
        return source_tree
    raise FileNotFoundError(f"shipped weights {filename!r} not found (looked in hear_suite.weights "
                            f"and {source_tree.parent}); pass model_file_path explicitly")
