"""The models of hear_suite: one line each, read by the CLI, the evaluation driver and the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class ModelEntry:
    name: str                            # family name stored in checkpoints
    module: str                          # HEAR plugin module (load_model, get_*_embeddings)
    weights: Optional[str] = None        # default weights file in weights/; None: no weights
    # module with add_arguments(parser) and main(args) for `hear-suite train`; None: not trained
    train_module: Optional[str] = None


MODELS: Dict[str, ModelEntry] = {
    "kwmlp": ModelEntry("kwmlp", "hear_suite.kwmlp", "kwmlp_real.pt", "hear_suite.kwmlp.train"),
    "ast": ModelEntry("ast", "hear_suite.ast", "ast_real128.pt", "hear_suite.ast.train"),
    "bagofcodes": ModelEntry("bagofcodes", "hear_suite.bagofcodes", "bagofcodes_real.pt",
                             "hear_suite.bagofcodes.train"),
    # the paper's classifier over bagofcodes embeddings (trains a head, not an embedding model)
    "bagofcodes-head": ModelEntry("bagofcodes-head", "hear_suite.bagofcodes", "bagofcodes_real.pt",
                                  "hear_suite.bagofcodes.head"),
    # the no-learning floor of every evaluation table: no weights, nothing to train
    "logmel": ModelEntry("logmel", "hear_suite.logmel"),
}


def shipped_weights() -> List[Tuple[str, str]]:
    """``(module, file name)`` of every ``weights/*.pt``, the module found from the file name's
    model family (``ast_absolute.pt`` -> ``hear_suite.ast``). Read from the folder on each call:
    a file added there is picked up without a registry change."""
    from hear_suite.checkpoint import default_weights

    modules = {e.name: e.module for e in MODELS.values() if e.weights}
    out = []
    for path in sorted(default_weights(MODELS["kwmlp"].weights).parent.glob("*.pt")):
        family = max((f for f in modules if path.name.startswith(f)), key=len)
        out.append((modules[family], path.name))
    return out
