"""The models of hear_suite: one line each, read by the CLI, the evaluation driver and the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class ModelEntry:
    name: str                            # family name stored in checkpoints
    module: str                          # HEAR plugin module (load_model, get_*_embeddings)
    weights: Optional[str] = None        # default weights file in weights/; None: no weights
    # module with add_arguments(parser) and main(args) for `hear-suite train`; None: not trained
    train_module: Optional[str] = None


MODELS: Dict[str, ModelEntry] = {
    "kwmlp": ModelEntry("kwmlp", "hear_suite.kwmlp", "kwmlp.pt", "hear_suite.kwmlp.train"),
    "ast": ModelEntry("ast", "hear_suite.ast", "ast_conditional.pt", "hear_suite.ast.train"),
    "bagofcodes": ModelEntry("bagofcodes", "hear_suite.bagofcodes", "bagofcodes.pt",
                             "hear_suite.bagofcodes.train"),
    # the paper's classifier over bagofcodes embeddings (trains a head, not an embedding model)
    "bagofcodes-head": ModelEntry("bagofcodes-head", "hear_suite.bagofcodes", "bagofcodes.pt",
                                  "hear_suite.bagofcodes.head"),
    # the no-learning floor of every evaluation table: no weights, nothing to train
    "logmel": ModelEntry("logmel", "hear_suite.logmel"),
}
