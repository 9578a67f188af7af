"""Reading and writing KW-MLP checkpoints: hear_suite's own format and the original layout."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from hear_suite import checkpoint
from hear_suite.registry import MODELS
from hear_suite.kwmlp import original
from hear_suite.kwmlp.model import KWMLP, KWMLPConfig

FAMILY = "kwmlp"
DEFAULT_WEIGHTS = MODELS["kwmlp"].weights  # the one place defaults are named


def encoder_from_state(config: KWMLPConfig, state_dict: Dict[str, Any], source: str) -> KWMLP:
    model = KWMLP(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit a KW-MLP of its config: {e}") from e
    return model.eval()


def load_encoder(path: Optional[Union[str, Path]] = None) -> KWMLP:
    """A KW-MLP encoder from a hear_suite checkpoint or an original ``kwmlp.pth``."""
    path = checkpoint.resolve_weights(path, DEFAULT_WEIGHTS)
    obj = checkpoint.load_file(path)
    if checkpoint.is_hear_suite_checkpoint(obj):
        checkpoint.check_family(obj, FAMILY, path)
        config = KWMLPConfig.from_dict(obj["config"])
        return encoder_from_state(config, obj["state_dict"], str(path))
    try:
        sd = original.unwrap_original(obj)
    except ValueError:
        raise ValueError(f"{path} is neither a hear_suite kwmlp checkpoint nor an original "
                         f"HEAR 2021 kwmlp.pth") from None
    config, state_dict = original.from_original(sd)
    return encoder_from_state(config, state_dict, str(path))


def save_encoder(path: Union[str, Path], model: KWMLP,
                 provenance: Optional[Dict[str, Any]] = None) -> None:
    checkpoint.save_checkpoint(path, family=FAMILY, config=model.config.to_dict(),
                               state_dict=model.state_dict(), provenance=provenance)


def export_original(src: Optional[Union[str, Path]], dst: Union[str, Path]) -> None:
    """Write ``src`` (default: shipped weights) in the HEAR 2021 ``kwmlp.pth`` layout."""
    model = load_encoder(src)
    checkpoint.save_atomic(original.to_original(model.state_dict(), model.config), dst)
