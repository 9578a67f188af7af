"""The HEAR 2021 ``kwmlp`` checkpoint layout (``kwmlp.pth``) and conversion both ways.

The original file is ``torch.save({"model_state_dict": sd, ...})`` with the key names of
lucidrains' ``g-mlp-pytorch`` (``to_patch_embed.1``, ``layers.i.fn.norm`` for the post-norm,
``layers.i.fn.fn.{proj_in.0, sgu.norm, sgu.proj, proj_out}``, ``to_logits.{0,2}``) and no config:
hyperparameters are read off the tensor shapes.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Tuple

from torch import Tensor

from hear_suite.kwmlp.model import SPEECH_COMMANDS_35, KWMLPConfig

_BLOCK_RENAMES = (  # (ours inside blocks.i, original inside layers.i)
    ("norm", "fn.norm"),
    ("proj_in", "fn.fn.proj_in.0"),
    ("sgu.norm", "fn.fn.sgu.norm"),
    ("sgu.proj", "fn.fn.sgu.proj"),
    ("proj_out", "fn.fn.proj_out"),
)
_TOP_RENAMES = (
    ("patch_embed", "to_patch_embed.1"),
    ("head_norm", "to_logits.0"),
    ("head", "to_logits.2"),
)


def _renames(depth: int) -> Tuple[Tuple[str, str], ...]:
    pairs = list(_TOP_RENAMES)
    for i in range(depth):
        pairs += [(f"blocks.{i}.{ours}", f"layers.{i}.{orig}") for ours, orig in _BLOCK_RENAMES]
    return tuple((f"{a}.{p}", f"{b}.{p}") for a, b in pairs for p in ("weight", "bias"))


def is_original_state_dict(sd: Dict[str, Any]) -> bool:
    return isinstance(sd, dict) and "to_patch_embed.1.weight" in sd


def unwrap_original(obj: Any) -> Dict[str, Tensor]:
    """The state dict inside an original ``kwmlp.pth`` (or the state dict itself)."""
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not is_original_state_dict(obj):
        raise ValueError("not a HEAR 2021 kwmlp checkpoint: no 'to_patch_embed.1.weight' key")
    return obj


def config_from_original(sd: Dict[str, Tensor]) -> KWMLPConfig:
    """Read depth, width and classes off an original state dict's shapes."""
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    dim, n_mfcc = sd["to_patch_embed.1.weight"].shape
    dim_ff = sd["layers.0.fn.fn.proj_in.0.weight"].shape[0]
    n_classes = sd["to_logits.2.weight"].shape[0]
    labels = SPEECH_COMMANDS_35 if n_classes == 35 else tuple(f"class{i}" for i in range(n_classes))
    config = KWMLPConfig(n_mfcc=n_mfcc, n_mels=n_mfcc, dim=dim, depth=depth,
                         ff_mult=dim_ff // dim, labels=labels)
    tokens = sd["layers.0.fn.fn.sgu.proj.weight"].shape[0]
    if tokens != config.num_frames:
        raise ValueError(f"original checkpoint mixes {tokens} tokens; the 16 kHz / hop 160 "
                         f"frontend gives {config.num_frames}")
    return config


def from_original(sd: Dict[str, Tensor]) -> Tuple[KWMLPConfig, Dict[str, Tensor]]:
    """Original state dict -> (config, hear_suite state dict). Every key must be accounted for."""
    config = config_from_original(sd)
    renames = _renames(config.depth)
    missing = [orig for _, orig in renames if orig not in sd]
    extra = sorted(set(sd) - {orig for _, orig in renames})
    if missing or extra:
        raise ValueError(f"original kwmlp checkpoint has unexpected layout: missing {missing[:4]}, "
                         f"unexpected {extra[:4]}")
    return config, {ours: sd[orig] for ours, orig in renames}


def to_original(state_dict: Dict[str, Tensor], config: KWMLPConfig) -> Dict[str, Any]:
    """hear_suite state dict -> the original file's content ``{"model_state_dict": sd}``."""
    return {"model_state_dict": {orig: state_dict[ours].detach().cpu().contiguous()
                                 for ours, orig in _renames(config.depth)}}
