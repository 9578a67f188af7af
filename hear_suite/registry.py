"""The models of hear_suite: one line each, read by the CLI, the evaluation driver and the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class ModelEntry:
    name: str            # family name stored in checkpoints
    module: str          # HEAR plugin module (load_model, get_*_embeddings)
    weights: str         # default weights file in weights/
    train_module: str    # module with add_arguments(parser) and main(args) for `hear-suite train`


MODELS: Dict[str, ModelEntry] = {
    "kwmlp": ModelEntry("kwmlp", "hear_suite.kwmlp", "kwmlp.pt", "hear_suite.kwmlp.train"),
}
