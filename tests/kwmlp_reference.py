"""A hand-written re-statement of the HEAR 2021 ``kwmlp`` procedure (../shared/specs/kwmlp.md):
one clip and one chunk at a time, plain loops, float64 encoder run straight from the *original*
checkpoint layout with functional ops. Used to check the batched implementation."""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SR = 16000


def _encode_chunk(mfcc: Tensor, sd: Dict[str, Tensor], depth: int) -> Tensor:
    """(40, 98) MFCC -> (98, 64) normalised frame embeddings, float64."""
    p = {k: v.double() for k, v in sd.items()}
    x = mfcc.double().T @ p["to_patch_embed.1.weight"].T + p["to_patch_embed.1.bias"]
    for i in range(depth):
        pre = f"layers.{i}.fn."
        h = F.gelu(x @ p[pre + "fn.proj_in.0.weight"].T + p[pre + "fn.proj_in.0.bias"])
        half = h.shape[1] // 2
        res, gate = h[:, :half], h[:, half:]
        gate = F.layer_norm(gate, (half,), p[pre + "fn.sgu.norm.weight"], p[pre + "fn.sgu.norm.bias"])
        w = p[pre + "fn.sgu.proj.weight"][:, :, 0]
        gate = w @ gate + p[pre + "fn.sgu.proj.bias"][:, None]
        h = (gate * res) @ p[pre + "fn.proj_out.weight"].T + p[pre + "fn.proj_out.bias"]
        x = x + F.layer_norm(h, (h.shape[1],), p[pre + "norm.weight"], p[pre + "norm.bias"])
    return F.layer_norm(x, (x.shape[1],))


def reference_frames(clip: Tensor, sd: Dict[str, Tensor], mfcc_layer, depth: int = 12
                     ) -> Tuple[Tensor, int]:
    """One clip (L,) -> (all frames (t, 64) float64, n_ts)."""
    padded = torch.cat([torch.zeros(80), clip.float(), torch.zeros(240)])
    n_ts = int((1000 * len(padded) / SR - 30) / 10 + 1)
    seconds = max(1, math.ceil(len(padded) / SR))
    padded = torch.cat([padded, torch.zeros(seconds * SR - len(padded))])
    frames: List[Tensor] = []
    for j in range(seconds):
        mfcc = mfcc_layer(padded[j * SR:(j + 1) * SR][None])[0]
        emb = _encode_chunk(mfcc, sd, depth)
        frames.append(emb[0])
        frames.extend(emb)
        frames.append(emb[-1])
    return torch.stack(frames[1:-1]), n_ts


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """Linear interpolation along axis 0 with aligned corners, one output step at a time.

    Source positions are computed in float32 as the original's ``F.interpolate`` on float32
    tensors does (scale = (t-1)/(size-1), pos = scale * i): at 20 minutes those positions are
    off by ~4e-3 frames, which shows in the scene embedding, so a float64 position would not
    be the original's result.
    """
    t = x.shape[0]
    if t == size:
        return x
    scale = np.float32(t - 1) / np.float32(size - 1) if size > 1 else np.float32(0)
    out = np.empty((size, x.shape[1]))
    for i in range(size):
        pos = np.float32(scale * np.float32(i))
        lo = min(int(np.floor(pos)), t - 1)
        w = float(min(max(np.float32(pos - np.float32(lo)), np.float32(0)), np.float32(1)))
        hi = lo + 1 if lo < t - 1 else lo
        out[i] = x[lo] * (1 - w) + x[hi] * w
    return out


def reference_scene(frames: Tensor, pooling: str = "iterative_interpolation") -> np.ndarray:
    """(t, 64) -> (1024,), feature-major."""
    x = frames.numpy()
    if x.shape[0] < 16:
        x = np.concatenate([x, np.zeros((16 - x.shape[0], x.shape[1]))])
    t = x.shape[0]
    if pooling == "iterative_interpolation" and t > 16:
        size = t
        for _ in range(int(math.floor(math.log2(t / 16)))):
            size //= 2
            x = _resize(x, size)
        if x.shape[0] != 16:
            x = _resize(x, 16)
    elif pooling == "single_interpolation" and t > 16:
        x = _resize(x, 16)
    elif pooling == "group_mean":
        # 16 consecutive groups, the first t % 16 one frame longer
        sizes = [t // 16 + (1 if g < t % 16 else 0) for g in range(16)]
        starts = np.cumsum([0] + sizes)
        x = np.stack([x[starts[g]:starts[g + 1]].mean(0) for g in range(16)])
    return x.T.reshape(-1)
