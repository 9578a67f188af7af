"""Golden outputs of the shipped weights: a fixed input, a few stored values per embedding.

    python tests/golden.py     # rewrite tests/golden_outputs.json after retraining weights

Every shipped file in ``weights/`` is recorded, loaded by name as a user would.

Continuous embeddings (kwmlp, ast) are compared value by value; bag-of-codes values are code
counts, where another BLAS may flip a rare near-tie between two centroids: those are compared by
the total absolute difference (a flip moves 1 / window-seconds between two bins).
"""
import json
from pathlib import Path

import numpy as np
import torch

from hear_suite.registry import shipped_weights  # the tests import it from here too

GOLDEN = Path(__file__).with_name("golden_outputs.json")
# (how, bound): "max_abs" per value, or "sum_abs" over each stored vector
TOLERANCE = {"hear_suite.kwmlp": ("max_abs", 1e-4), "hear_suite.ast": ("max_abs", 1e-4),
             "hear_suite.bagofcodes": ("sum_abs", 4.0)}


def golden_audio() -> torch.Tensor:
    """Two clips, (2, 40000): a 440 Hz tone in noise, and a falling chirp."""
    t = np.arange(40000) / 16000
    rng = np.random.RandomState(0)
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.uniform(-1, 1, t.size)
    chirp = 0.5 * np.sin(2 * np.pi * (2000 * t - 300 * t ** 2))
    return torch.tensor(np.stack([tone, chirp]), dtype=torch.float32)


def sample(module_name: str, weights: str):
    """Stored values: every 61st scene value, every 97th timestamp value, shapes."""
    import importlib

    hear = importlib.import_module(module_name)
    model = hear.load_model(weights)
    audio = golden_audio()
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    return {
        "scene_shape": list(scene.shape),
        "scene": scene.flatten()[::61].tolist(),
        "timestamp_shape": list(emb.shape),
        "timestamp": emb.flatten()[::97].tolist(),
        "timestamps_ms": ts[0, :: max(1, ts.shape[1] // 8)].tolist(),
    }


def key(module_name: str, weights: str) -> str:
    return f"{module_name}:{weights}"


def mismatch(module_name: str, got, want) -> str:
    """'' when ``got`` matches ``want`` within the module's tolerance, else what differs."""
    for key in ("scene_shape", "timestamp_shape", "timestamps_ms"):
        if got[key] != want[key]:
            return f"{module_name} {key}: {got[key]} != {want[key]}"
    how, bound = TOLERANCE[module_name]
    for key in ("scene", "timestamp"):
        diff = np.abs(np.array(got[key]) - np.array(want[key]))
        value = diff.max() if how == "max_abs" else diff.sum()
        if value > bound:
            return f"{module_name} {key}: {how} difference {value:.3g} > {bound:g}"
    return ""


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({key(m, w): sample(m, w) for m, w in shipped_weights()},
                                 indent=1))
    print(f"wrote {GOLDEN}")
