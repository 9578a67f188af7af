"""The original AST checkpoints (Gong et al., github.com/YuanGongND/ast) and conversion both ways.

A published file (``audioset_10_10_0.4593.pth``, the other AudioSet ensemble members
``audioset_{10,12,14,16}_*``, ``speechcommands_10_10_0.9812.pth``, an ESC-50 recipe's
``best_audio_model.pth``) is ``torch.save(model.state_dict())`` of ``nn.DataParallel(ASTModel)``:

- ``module.v.*``: timm 0.4.5's DeiT-base distilled ViT: ``cls_token``, ``dist_token``,
  ``pos_embed (1, 2 + F * T, 768)`` (frequency-major grid), ``patch_embed.proj`` (the AST's
  ``Conv2d(1, 768, 16, stride=(fstride, tstride))``), ``blocks.N.*`` (timm's names, which are
  ours), ``norm``; also ``head`` and ``head_dist``, DeiT's ImageNet classifiers, which the AST
  keeps but never uses;
- ``module.mlp_head.{0,1}``: ``LayerNorm(768)`` (torch's default eps 1e-5, where timm's are
  1e-6) then ``Linear(768, classes)``.

There is no config. The recipe (frames per clip, normalisation, class names) is known from the
number of classes (``RECIPES``, from the repository's ``egs/*/run*.sh``); the strides from the
positional table's size (and the file name, which carries them); the width, depth and feed-forward
size from the shapes; the heads from the width (DeiT's heads are 64 wide). The frontend is the
Kaldi filterbank of the AST's ``dataloader.py`` (:class:`hear_suite.frontends.KaldiFbank`).
"""
from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from hear_suite.ast.model import ASTConfig

# classes -> (recipe, frames per clip, dataset mean, dataset std): egs/{audioset,esc50,
# speechcommands}/run*.sh (audio_length, dataset_mean, dataset_std)
RECIPES = {
    527: ("audioset", 1024, -4.2677393, 4.5689974),
    50: ("esc50", 512, -6.6268077, 5.358466),
    35: ("speechcommands", 128, -6.845978, 5.5654526),
}
# the recipes' class names (egs/*/data/*class_labels_indices.csv, display_name by index)
LABELS_FILE = "recipe_labels.json"
N_MELS, PATCH, HEAD_DIM = 128, 16, 64          # every AST recipe: 128 bins, 16 x 16, DeiT heads
# the Kaldi filterbank of dataloader.py (torchaudio.compliance.kaldi.fbank's defaults otherwise)
KALDI_FRONTEND = dict(frontend="kaldi_fbank", sample_rate=16000, n_mels=N_MELS, n_fft=512,
                      win_length=400, hop_length=160, fmin=20.0, fmax=8000.0,
                      log_offset=float(torch.finfo(torch.float32).eps), normalization="mean_std")
# the ViT of the AST: DeiT's layout with a 1-channel overlapping patch conv, absolute table
VIT = dict(patch_freq=PATCH, patch_time=PATCH, order="freq_major", activation="gelu", dropout=0.0,
           qkv_bias=True, dist_token=True, embed_norm=False, final_norm=True, head_norm=True,
           pos_embed="absolute")

_BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
               "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
               "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")
# DeiT's ImageNet classifiers: in every original file, read by nothing
UNUSED = ("v.head.weight", "v.head.bias", "v.head_dist.weight", "v.head_dist.bias")


def _renames(depth: int) -> List[Tuple[str, str]]:
    """(hear_suite key, original key without ``module.``) for every tensor the model uses."""
    pairs = [("cls_token", "v.cls_token"), ("dist_token", "v.dist_token"),
             ("pos_embed.weight", "v.pos_embed"),
             ("patch_embed.proj.weight", "v.patch_embed.proj.weight"),
             ("patch_embed.proj.bias", "v.patch_embed.proj.bias"),
             ("norm.weight", "v.norm.weight"), ("norm.bias", "v.norm.bias"),
             ("head_norm.weight", "mlp_head.0.weight"), ("head_norm.bias", "mlp_head.0.bias"),
             ("head.weight", "mlp_head.1.weight"), ("head.bias", "mlp_head.1.bias")]
    pairs += [(f"blocks.{i}.{k}", f"v.blocks.{i}.{k}") for i in range(depth) for k in _BLOCK_KEYS]
    return pairs


def is_original(obj: Any) -> bool:
    return isinstance(obj, dict) and any(
        isinstance(k, str) and k.removeprefix("module.") == "v.pos_embed" for k in obj)


def _grid(stride: Tuple[int, int], frames: int) -> Tuple[int, int]:
    return (N_MELS - PATCH) // stride[0] + 1, (frames - PATCH) // stride[1] + 1


def infer_strides(n_patches: int, frames: int, name: str = "") -> Tuple[int, int]:
    """``(fstride, tstride)`` whose grid over ``128 x frames`` has ``n_patches`` patches. The
    published names carry them (``audioset_12_12_0.4467.pth``); they break a tie."""
    fits = [(f, t) for f in range(1, PATCH + 1) for t in range(1, PATCH + 1)
            if _grid((f, t), frames)[0] * _grid((f, t), frames)[1] == n_patches]
    named = re.search(r"_(\d+)_(\d+)_", name)
    if named:
        for pair in ((int(named[1]), int(named[2])), (int(named[2]), int(named[1]))):
            if pair in fits:
                return pair
    if len(fits) != 1:
        found = f"candidates {fits}" if fits else "no stride fits"
        raise ValueError(f"cannot tell the patch strides of a {n_patches}-patch table over "
                         f"{frames} frames: {found} (name the file as the published ones, e.g. "
                         f"audioset_10_10_*.pth)")
    return fits[0]


def from_original(sd: Dict[str, Tensor], *, name: str = "", frames: Optional[int] = None,
                  norm_mean: Optional[float] = None, norm_std: Optional[float] = None
                  ) -> Tuple[ASTConfig, Dict[str, Tensor]]:
    """An original state dict (with or without DataParallel's ``module.``) -> (config,
    hear_suite state dict). ``name``: the file name (strides). ``frames``, ``norm_mean``,
    ``norm_std``: the recipe of a model fine-tuned on another label set (the three published
    recipes are known by their class count). Every key is used, or is one of ``UNUSED``."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "mlp_head.1.weight" not in sd or "v.patch_embed.proj.weight" not in sd:
        raise ValueError("not an original AST checkpoint: no 'module.mlp_head.1.weight' or "
                         "'module.v.patch_embed.proj.weight'")
    classes, dim = sd["mlp_head.1.weight"].shape
    recipe = RECIPES.get(classes)
    if recipe is None and None in (frames, norm_mean, norm_std):
        raise ValueError(f"original AST with {classes} classes: not one of the published recipes "
                         f"({', '.join(f'{r[0]}: {n}' for n, r in RECIPES.items())}); give its "
                         f"frames, norm_mean and norm_std (hear-suite export ast-import --frames "
                         f"N --norm-mean M --norm-std S)")
    name_of_recipe, default_frames, default_mean, default_std = recipe or (None,) * 4
    frames = frames or default_frames
    kernel = tuple(sd["v.patch_embed.proj.weight"].shape)
    if kernel != (dim, 1, PATCH, PATCH):
        raise ValueError(f"original AST patch kernel {kernel}, expected ({dim}, 1, 16, 16)")
    stride = infer_strides(sd["v.pos_embed"].shape[1] - 2, frames, name)
    depth = 1 + max(int(m[1]) for k in sd if (m := re.match(r"v\.blocks\.(\d+)\.", k)))
    config = ASTConfig(
        **KALDI_FRONTEND, **VIT, window_frames=frames, stride_freq=stride[0],
        stride_time=stride[1], dim=dim, depth=depth, heads=dim // HEAD_DIM,
        ff_dim=sd["v.blocks.0.mlp.fc1.weight"].shape[0], norm_eps=1e-6, head_norm_eps=1e-5,
        norm_mean=default_mean if norm_mean is None else norm_mean,
        norm_std=default_std if norm_std is None else norm_std,
        labels=recipe_labels(name_of_recipe) or tuple(f"class{i}" for i in range(classes)))
    renames = _renames(depth)
    missing = [orig for _, orig in renames if orig not in sd]
    unexpected = sorted(set(sd) - {orig for _, orig in renames} - set(UNUSED))
    if missing or unexpected:
        raise ValueError(f"original AST checkpoint has an unexpected layout: missing "
                         f"{missing[:4]}, unexpected {unexpected[:4]}")
    return config, {ours: sd[orig] for ours, orig in renames}


def recipe_labels(recipe: Optional[str]) -> Tuple[str, ...]:
    """Class names of a published recipe (``"audioset"``, ``"esc50"``, ``"speechcommands"``)."""
    if recipe is None:
        return ()
    text = resources.files("hear_suite.ast").joinpath(LABELS_FILE).read_text(encoding="utf-8")
    return tuple(json.loads(text)[recipe])


def layout_mismatches(config: ASTConfig, free: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """The fields of ``config`` that differ from the published ASTs' frontend and ViT (besides
    ``log_offset`` and the fields in ``free``): what a published layout cannot hold."""
    return {k: getattr(config, k) for k, v in {**KALDI_FRONTEND, **VIT}.items()
            if k not in ("log_offset", *free) and getattr(config, k) != v}


def check_exportable(config: ASTConfig) -> None:
    """Raise ``ValueError`` unless the original ``ASTModel`` can hold this model."""
    wrong = layout_mismatches(config)
    if config.dim % HEAD_DIM or config.heads != config.dim // HEAD_DIM:
        wrong["heads"] = config.heads
    if wrong:
        raise ValueError(f"this AST does not fit the original ASTModel (Kaldi fbank frontend, "
                         f"DeiT ViT with 64-wide heads): {wrong}")


def to_original(state_dict: Dict[str, Tensor], config: ASTConfig) -> Dict[str, Tensor]:
    """hear_suite state dict -> an original file's state dict (``module.``-prefixed, as the
    recipes save and load it). DeiT's unused ImageNet heads (``UNUSED``) are written as zeros of
    their shape, so that the original code's strict ``load_state_dict`` accepts the file."""
    check_exportable(config)
    out = {f"module.{orig}": state_dict[ours].detach().cpu().contiguous()
           for ours, orig in _renames(config.depth)}
    for key in UNUSED:
        shape = (1000, config.dim) if key.endswith("weight") else (1000,)
        out[f"module.{key}"] = torch.zeros(shape)
    return out
