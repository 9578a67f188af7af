"""Randomness: :func:`derive_seed` makes distinct 32-bit seeds from a seed and e.g. ``(rank,
epoch)``, :func:`seed_everything` seeds python, numpy and torch, and :func:`rng_state` /
:func:`set_rng_state` capture and restore all three as tensors and plain values (loadable with
``weights_only``), which is what makes a resumed run bit-identical."""
from __future__ import annotations

import hashlib
import random
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch


def derive_seed(seed: int, *parts: int) -> int:
    """A 32-bit seed from ``seed`` and e.g. ``(rank, epoch)``: distinct inputs, distinct seeds."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")



def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (CPU and CUDA). ``rank`` 0 uses ``seed`` itself, so a model
    built right after seeding with the same ``seed`` is identical on every rank seeded with
    ``rank=0``; other ranks get :func:`derive_seed` ``(seed, rank)``."""
    s = seed if rank == 0 else derive_seed(seed, rank)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device



def rng_state(device: Optional[torch.device] = None) -> Dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain values (``weights_only``-safe).
    With a CUDA ``device``, that device's generator too."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state



def set_rng_state(state: Mapping[str, Any], device: Optional[torch.device] = None) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)

