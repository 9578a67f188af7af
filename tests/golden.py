"""Golden outputs of the shipped weights: a fixed input, a few stored values per embedding.

    python tests/golden.py     # rewrite tests/golden_outputs.json after retraining weights
"""
import json
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).with_name("golden_outputs.json")


def golden_audio() -> torch.Tensor:
    """Two clips, (2, 40000): a 440 Hz tone in noise, and a falling chirp."""
    t = np.arange(40000) / 16000
    rng = np.random.RandomState(0)
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.uniform(-1, 1, t.size)
    chirp = 0.5 * np.sin(2 * np.pi * (2000 * t - 300 * t ** 2))
    return torch.tensor(np.stack([tone, chirp]), dtype=torch.float32)


def sample(module_name: str):
    """Stored values: every 61st scene value, every 97th timestamp value, shapes."""
    import importlib

    hear = importlib.import_module(module_name)
    model = hear.load_model()
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


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({"hear_suite.kwmlp": sample("hear_suite.kwmlp")}, indent=1))
    print(f"wrote {GOLDEN}")
