"""The reference for the benchmark: the HEAR 2021 ``kwmlp`` code path as the original package runs
it — the whole batch padded, every chunk of every clip through the MFCC and the encoder in one
batch, the gMLP written as in ``g-mlp-pytorch`` (``chunk`` of the expanded channels, token mixing
by ``conv1d``). Same weights (original layout) and same results as ``hear_suite.kwmlp``; only the
execution differs. Not part of the package."""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor


class OriginalStyleKWMLP:
    def __init__(self, sd: Dict[str, Tensor], mfcc_layer, depth: int = 12) -> None:
        self.sd, self.mfcc, self.depth = sd, mfcc_layer, depth

    def encode(self, chunks: Tensor) -> Tensor:
        p = self.sd
        x = F.linear(self.mfcc(chunks).transpose(1, 2), p["to_patch_embed.1.weight"],
                     p["to_patch_embed.1.bias"])
        for i in range(self.depth):
            q = f"layers.{i}.fn."
            h = F.gelu(F.linear(x, p[q + "fn.proj_in.0.weight"], p[q + "fn.proj_in.0.bias"]))
            res, gate = h.chunk(2, dim=-1)
            gate = F.layer_norm(gate, gate.shape[-1:], p[q + "fn.sgu.norm.weight"],
                                p[q + "fn.sgu.norm.bias"])
            gate = F.conv1d(gate, p[q + "fn.sgu.proj.weight"], p[q + "fn.sgu.proj.bias"])
            h = F.linear(gate * res, p[q + "fn.proj_out.weight"], p[q + "fn.proj_out.bias"])
            x = x + F.layer_norm(h, h.shape[-1:], p[q + "norm.weight"], p[q + "norm.bias"])
        return F.layer_norm(x, x.shape[-1:])

    def frames(self, audio: Tensor) -> Tensor:
        audio = F.pad(audio, (80, 240))
        n, length = audio.shape
        seconds = max(1, math.ceil(length / 16000))
        audio = F.pad(audio, (0, seconds * 16000 - length))
        emb = self.encode(audio.reshape(n * seconds, 16000))
        emb = torch.cat([emb[:, :1], emb, emb[:, -1:]], dim=1).reshape(n, seconds * 100, -1)
        return emb[:, 1:-1]

    @torch.no_grad()
    def timestamp_embeddings(self, audio: Tensor):
        n_ts = int((1000 * (audio.shape[1] + 320) / 16000 - 30) / 10 + 1)
        ts = torch.arange(1, n_ts + 1, dtype=torch.float32).mul(10).expand(audio.shape[0], -1)
        return self.frames(audio)[:, :n_ts], ts

    @torch.no_grad()
    def scene_embeddings(self, audio: Tensor) -> Tensor:
        x = self.frames(audio).transpose(1, 2)
        t = x.shape[-1]
        if t < 16:
            x = F.pad(x, (0, 16 - t))
        elif t > 16:
            ratio = math.log2(t / 16)
            size = t
            for _ in range(int(math.floor(ratio))):
                size //= 2
                x = F.interpolate(x, size=size, mode="linear", align_corners=True)
            if ratio != math.floor(ratio):
                x = F.interpolate(x, size=16, mode="linear", align_corners=True)
        return x.flatten(1)
