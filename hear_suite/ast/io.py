"""Reading and writing AST checkpoints (hear_suite's format; the variant is in the config)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from hear_suite import checkpoint
from hear_suite.registry import MODELS
from hear_suite.ast.model import AST, ASTConfig

FAMILY = "ast"
DEFAULT_WEIGHTS = MODELS["ast"].weights  # the one place defaults are named


def encoder_from_state(config: ASTConfig, state_dict: Dict[str, Any], source: str) -> AST:
    model = AST(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit an AST of its config: {e}") from e
    return model.eval()


def load_encoder(path: Optional[Union[str, Path]] = None) -> AST:
    """An AST encoder from a hear_suite ``ast`` checkpoint (default: the shipped conditional-PE
    weights ``weights/ast_conditional.pt``)."""
    path = checkpoint.resolve_weights(path, DEFAULT_WEIGHTS)
    obj = checkpoint.load_checkpoint(path, FAMILY)
    return encoder_from_state(ASTConfig.from_dict(obj["config"]), obj["state_dict"], str(path))


def save_encoder(path: Union[str, Path], model: AST,
                 provenance: Optional[Dict[str, Any]] = None) -> None:
    checkpoint.save_checkpoint(path, family=FAMILY, config=model.config.to_dict(),
                               state_dict=model.state_dict(), provenance=provenance)
