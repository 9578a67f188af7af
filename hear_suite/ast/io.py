"""Reading and writing AST checkpoints: hear_suite's format (the variant is in the config), the
original AST's files (:mod:`hear_suite.ast.original`) and Hugging Face's
``ASTForAudioClassification`` (:mod:`hear_suite.ast.huggingface`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from hear_suite import checkpoint
from hear_suite.registry import MODELS
from hear_suite.ast import huggingface, original
from hear_suite.ast.model import AST, ASTConfig

FAMILY = "ast"
DEFAULT_WEIGHTS = MODELS["ast"].weights  # the one place defaults are named
EXPECTED = ("a hear_suite 'ast' checkpoint, an original AST checkpoint (YuanGongND/ast, "
            "'module.v.*' and 'module.mlp_head.*' keys) or a Hugging Face "
            "ASTForAudioClassification (a directory with config.json and model.safetensors or "
            "pytorch_model.bin)")


def encoder_from_state(config: ASTConfig, state_dict: Dict[str, Any], source: str) -> AST:
    model = AST(config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit an AST of its config: {e}") from e
    return model.eval()


def read_any(path: Optional[Union[str, Path]] = None, **recipe: Any) -> tuple:
    """``(config, state_dict, provenance)`` of any AST checkpoint ``load_model`` takes (default:
    the shipped weights): hear_suite's, an original AST ``.pth``, or a Hugging Face model
    directory (or its weights file with ``config.json`` beside it). ``recipe``: ``frames``,
    ``norm_mean``, ``norm_std`` of an original file fine-tuned on another label set."""
    path = checkpoint.resolve_weights(path, DEFAULT_WEIGHTS)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    imported = {"imported_from": str(path), "layout": "huggingface"}
    if path.is_dir() or (path.stat().st_size and huggingface.is_safetensors(path)):
        return (*huggingface.from_hf(*huggingface.read(path)), imported)
    obj = checkpoint.load_file(path)
    if checkpoint.is_hear_suite_checkpoint(obj):
        checkpoint.check_family(obj, FAMILY, path)
        return ASTConfig.from_dict(obj["config"]), obj["state_dict"], obj.get("provenance", {})
    if original.is_original(obj):
        config, sd = original.from_original(obj, name=path.name, **recipe)
        return config, sd, {**imported, "layout": "original"}
    if huggingface.is_hf_state_dict(obj):  # pytorch_model.bin: read above, config.json beside
        return (*huggingface.from_hf(*huggingface.read(path, state_dict=obj)), imported)
    raise ValueError(f"{path} is not an AST checkpoint: expected {EXPECTED}")


def load_encoder(path: Optional[Union[str, Path]] = None) -> AST:
    """An AST encoder from any checkpoint :func:`read_any` takes (default: the shipped
    ``weights/ast_real128.pt``)."""
    config, state_dict, _ = read_any(path)
    return encoder_from_state(config, state_dict, str(path or DEFAULT_WEIGHTS))


def save_encoder(path: Union[str, Path], model: AST,
                 provenance: Optional[Dict[str, Any]] = None) -> None:
    checkpoint.save_checkpoint(path, family=FAMILY, config=model.config.to_dict(),
                               state_dict=model.state_dict(), provenance=provenance)


def export(src: Optional[Union[str, Path]], dst: Union[str, Path], layout: str,
           **recipe: Any) -> None:
    """Write the AST of ``src`` (any checkpoint :func:`read_any` takes) in ``layout``:
    ``"original"`` (a ``.pth`` file), ``"huggingface"`` (a directory) or ``"hear_suite"``."""
    config, sd, provenance = read_any(src, **recipe)
    if layout == "original":
        checkpoint.save_atomic(original.to_original(sd, config), dst)
    elif layout == "huggingface":
        huggingface.write(Path(dst), *huggingface.to_hf(sd, config))
    elif layout == "hear_suite":
        checkpoint.save_checkpoint(dst, family=FAMILY, config=config.to_dict(), state_dict=sd,
                                   provenance=provenance)
    else:
        raise ValueError(f"layout must be original, huggingface or hear_suite, got {layout!r}")
