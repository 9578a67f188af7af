"""ImageNet initialisation of an AST from a local timm DeiT / ViT checkpoint (nothing is
downloaded): one pure conversion function, as timm's ``checkpoint_filter_fn``.

    sd = torch.load("deit_base_distilled_patch16_384.pth", weights_only=True)["model"]
    model = AST(ASTConfig.preset("ast", labels=...))
    model.load_state_dict(from_timm(sd, model), strict=True)
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor

from hear_suite.ast import pos_embed as pe
from hear_suite.ast.model import AST

# timm block keys that map one to one (ours are named like timm's on purpose).
_BLOCK_KEYS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
               "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
               "mlp.fc2.weight", "mlp.fc2.bias")


def from_timm(state_dict: Dict[str, Tensor], model: AST, *, kernel_reduce: str = "sum"
              ) -> Dict[str, Tensor]:
    """A full state dict for ``model`` from a timm DeiT/ViT ``state_dict`` (patch 16, square
    grid). Keys timm has no counterpart for (classifier head, PEGs, relative tables) keep
    ``model``'s own initial values. Raises ``ValueError`` when the shapes cannot be matched.

    - ``patch_embed.proj.weight (D, 3, k, k)`` -> ``(D, 1, k, k)``: the RGB kernels are summed
      (the AST code, ``torch.sum(dim=1)``; seed 002's text says averaged: ``kernel_reduce="mean"``).
      The kernel must equal the config's patch shape.
    - ``pos_embed (1, P' + G*G, D)``: the prefix rows go to the CLS / distillation rows (a ViT
      without distillation token gives its CLS row to both), the ``G x G`` grid is centre-cropped
      or bilinearly interpolated per axis to the audio grid (:func:`pe.resize_pos_grid`, the AST
      code's rule; grid rows = frequency, columns = time) and laid out in the config's order.
    - ``cls_token``, ``dist_token``, blocks and the final ``norm`` are copied; ``head*`` dropped;
      any other key is refused.
    """
    c = model.config
    out = {k: v.clone() for k, v in model.state_dict().items()}
    if kernel_reduce not in ("sum", "mean"):
        raise ValueError(f"kernel_reduce must be 'sum' or 'mean', got {kernel_reduce!r}")
    if not c.qkv_bias or c.activation != "gelu" or not c.final_norm:
        raise ValueError("a timm ViT needs qkv_bias=True, activation='gelu' and final_norm=True "
                         "(use the 'ast' preset)")
    w = state_dict["patch_embed.proj.weight"]
    if w.shape[0] != c.dim or tuple(w.shape[2:]) != (c.patch_freq, c.patch_time):
        raise ValueError(f"timm patch kernel {tuple(w.shape)} does not fit dim {c.dim} and patch "
                         f"{c.patch_freq} x {c.patch_time}")
    out["patch_embed.proj.weight"] = (w.sum(1, keepdim=True) if kernel_reduce == "sum"
                                      else w.mean(1, keepdim=True))
    out["patch_embed.proj.bias"] = state_dict["patch_embed.proj.bias"]
    out["cls_token"] = state_dict["cls_token"]
    timm_dist = state_dict.get("dist_token")
    if c.dist_token:
        # a plain ViT has no distillation token: start it as a copy of CLS
        out["dist_token"] = timm_dist if timm_dist is not None else state_dict["cls_token"]
    blocks = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")})
    if len(blocks) != c.depth:
        raise ValueError(f"timm checkpoint has {len(blocks)} blocks, the config {c.depth}")
    for i in blocks:
        for key in _BLOCK_KEYS:
            out[f"blocks.{i}.{key}"] = state_dict[f"blocks.{i}.{key}"]
    out["norm.weight"], out["norm.bias"] = state_dict["norm.weight"], state_dict["norm.bias"]
    used = {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "dist_token",
            "pos_embed", "norm.weight", "norm.bias"}
    used |= {f"blocks.{i}.{key}" for i in blocks for key in _BLOCK_KEYS}
    # the ImageNet classifiers (DeiT: head and head_dist) have no audio counterpart
    unexpected = sorted(k for k in set(state_dict) - used
                        if not k.startswith(("head.", "head_dist.")))
    if unexpected:
        raise ValueError(f"unexpected timm keys {unexpected[:4]}: not a DeiT / ViT of the "
                         f"layout this conversion knows")
    if "pos_embed.weight" in out:
        out["pos_embed.weight"] = _convert_pos_embed(state_dict["pos_embed"],
                                                     1 + (timm_dist is not None), model)
    for key, value in out.items():
        if value.shape != model.state_dict()[key].shape:
            raise ValueError(f"converted {key} has shape {tuple(value.shape)}, the model "
                             f"{tuple(model.state_dict()[key].shape)}")
    return out


def _convert_pos_embed(table: Tensor, timm_prefix: int, model: AST) -> Tensor:
    c = model.config
    grid_side = math.isqrt(table.shape[1] - timm_prefix)
    if grid_side * grid_side != table.shape[1] - timm_prefix:
        raise ValueError(f"timm pos_embed of {table.shape[1]} rows is not prefix + square grid")
    prefix = table[:, :timm_prefix]
    if c.num_prefix > timm_prefix:
        prefix = prefix.expand(-1, c.num_prefix, -1)  # ViT: CLS row for CLS and distillation
    prefix = prefix[:, :c.num_prefix]
    g = table[:, timm_prefix:].reshape(1, grid_side, grid_side, -1).permute(0, 3, 1, 2)
    g = pe.resize_pos_grid(g, c.grid())
    return torch.cat([prefix, pe.grid_to_tokens(g, c.order)], dim=1).contiguous()
