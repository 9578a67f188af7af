"""Reading and writing bag-of-codes checkpoints (hear_suite format, family ``bagofcodes``).

The file holds the config, the standardisation statistics, the four encoders and the four code
books; the frontend is rebuilt from the config, and the decoders (training only) are not stored.
Weights may be stored as float16 (``half=True``) to halve the file; they are converted back to
float32 on loading, so the embeddings are those of the rounded weights, always.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from hear_suite import checkpoint
from hear_suite.registry import MODELS
from hear_suite.bagofcodes.model import BagOfCodes, BagOfCodesConfig

FAMILY = "bagofcodes"
DEFAULT_WEIGHTS = MODELS["bagofcodes"].weights  # the one place defaults are named
FRONTEND = "frontend."  # state-dict prefix of the frontend: rebuilt from the config, not stored


def stored_state(model: BagOfCodes, *, half: bool = False) -> Dict[str, torch.Tensor]:
    """The model's state dict without the frontend (optionally in float16)."""
    return {k: (v.half() if half and v.is_floating_point() else v)
            for k, v in model.state_dict().items() if not k.startswith(FRONTEND)}


def model_from_state(config: BagOfCodesConfig, state_dict: Dict[str, Any],
                     source: str) -> BagOfCodes:
    model = BagOfCodes(config)
    state = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
             for k, v in state_dict.items()}
    state.update({k: v for k, v in model.state_dict().items() if k.startswith(FRONTEND)})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit a bag-of-codes model of its config: "
                         f"{e}") from e
    return model.eval()


def load_bagofcodes(path: Optional[Union[str, Path]] = None) -> BagOfCodes:
    """A :class:`BagOfCodes` from a hear_suite checkpoint (default: shipped weights)."""
    path = checkpoint.resolve_weights(path, DEFAULT_WEIGHTS)
    obj = checkpoint.load_checkpoint(path, FAMILY)
    return model_from_state(BagOfCodesConfig.from_dict(obj["config"]), obj["state_dict"], str(path))


def save_bagofcodes(path: Union[str, Path], model: BagOfCodes, *, half: bool = False,
                    provenance: Optional[Dict[str, Any]] = None) -> None:
    checkpoint.save_checkpoint(path, family=FAMILY, config=model.config.to_dict(),
                               state_dict=stored_state(model, half=half), provenance=provenance)
