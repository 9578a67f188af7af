"""KW-MLP (Morshed et al.): a gated-MLP (gMLP) encoder over 40 x 98 MFCCs of one second.

Post-norm gMLP blocks, exactly as the HEAR 2021 ``kwmlp`` submission::

    x = x + LayerNorm(proj_out(SpatialGatingUnit(GELU(proj_in(x)))))

``KWMLPConfig`` carries every hyperparameter and the frontend settings; a checkpoint stores it as a
dict so the model can be rebuilt from the file alone.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from hear_suite import frontends, onednn

SPEECH_COMMANDS_35: Tuple[str, ...] = tuple(
    "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin "
    "nine no off on one right seven sheila six stop three tree two up visual wow yes zero".split()
)


@dataclass(frozen=True)
class KWMLPConfig:
    """Everything that defines a KW-MLP model. Defaults: the HEAR 2021 ``kwmlp`` submission."""

    # frontend: nnAudio MFCC of one-second chunks
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40
    n_fft: int = 480
    win_length: int = 480
    hop_length: int = 160
    # encoder
    dim: int = 64
    depth: int = 12
    ff_mult: int = 4
    survival_prob: float = 0.9
    # pretraining classifier
    labels: Tuple[str, ...] = field(default=SPEECH_COMMANDS_35)

    def __post_init__(self) -> None:
        if self.depth < 1 or self.dim < 1 or self.ff_mult < 1:
            raise ValueError(f"depth, dim and ff_mult must be positive: {self}")
        if not 0.0 < self.survival_prob <= 1.0:
            raise ValueError(f"survival_prob must be in (0, 1], got {self.survival_prob}")
        if self.num_frames < 1:
            raise ValueError("n_fft longer than one second of audio")
        object.__setattr__(self, "labels", tuple(self.labels))

    @property
    def chunk_samples(self) -> int:
        """The encoder sees one second at a time."""
        return self.sample_rate

    @property
    def num_frames(self) -> int:
        """MFCC frames (tokens) of one chunk (``center=False``): 98 for the defaults."""
        return 1 + (self.chunk_samples - self.n_fft) // self.hop_length

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "KWMLPConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown KW-MLP config keys {sorted(unknown)}")
        return cls(**d)


def build_frontend(config: KWMLPConfig) -> nn.Module:
    """nnAudio MFCC layer: ``(n, samples)`` -> ``(n, n_mfcc, frames)``."""
    return frontends.mfcc(sample_rate=config.sample_rate, n_mfcc=config.n_mfcc,
                          n_mels=config.n_mels, n_fft=config.n_fft,
                          win_length=config.win_length, hop_length=config.hop_length,
                          center=False)


class SpatialGatingUnit(nn.Module):
    """Given the halves ``res`` and ``gate`` of the expanded channels: normalise ``gate``, mix it
    across tokens with a learned ``tokens x tokens`` projection, and return ``gate * res``.

    The projection is a ``Conv1d(tokens, tokens, 1)`` (tokens as channels), the parameter layout of
    the original code. With tokens first, the mixing of a whole batch is one matrix product
    ``W @ gate`` of ``(tokens, tokens)`` by ``(tokens, B * channels)``; for inference on the CPU
    oneDNN computes it with the product by ``res`` in the same kernel (:mod:`hear_suite.onednn`).
    """

    def __init__(self, *, dim_ff: int, num_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_ff // 2)
        self.proj = nn.Conv1d(num_tokens, num_tokens, 1)
        # Near-identity start (gMLP): tiny token mixing, bias 1, so the unit begins as `res`.
        eps = 1e-3 / num_tokens
        nn.init.uniform_(self.proj.weight, -eps, eps)
        nn.init.constant_(self.proj.bias, 1.0)

    def forward(self, res: Tensor, gate: Tensor) -> Tensor:
        """``res``, ``gate``: the two halves ``(tokens, B, dim_ff // 2)`` -> same shape."""
        tokens = gate.shape[0]
        gate = self.norm(gate).reshape(tokens, -1)                   # (tokens, B * channels)
        res_flat = res.reshape(tokens, -1)
        # res * (W @ gate + bias): `W @ gate` as a linear layer of W by gate's transposed view
        out = onednn.linear(self.proj.weight.squeeze(-1), gate.t(), multiply=res_flat)
        return out.addcmul_(res_flat, self.proj.bias[:, None]).view(res.shape)  # + res * bias


class GatedMLPBlock(nn.Module):
    """``x + LayerNorm(proj_out(sgu(GELU(proj_in(x)))))``: ``(tokens, B, dim)`` -> same."""

    def __init__(self, *, dim: int, dim_ff: int, num_tokens: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, dim_ff)
        self.sgu = SpatialGatingUnit(dim_ff=dim_ff, num_tokens=num_tokens)
        self.proj_out = nn.Linear(dim_ff // 2, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        # proj_in computed as its two output halves: `res` and `gate` come out contiguous, which
        # spares LayerNorm a copy of the strided half (same parameters, same values).
        half = self.proj_in.out_features // 2
        w, b = self.proj_in.weight, self.proj_in.bias
        res = onednn.linear(x, w[:half], b[:half], activation="gelu")
        gate = onednn.linear(x, w[half:], b[half:], activation="gelu")
        y = onednn.linear(self.sgu(res, gate), self.proj_out.weight, self.proj_out.bias)
        return x + self.norm(y)


def surviving_blocks(n_blocks: int, survival_prob: float) -> List[int]:
    """Stochastic depth: indices of the blocks kept for one training step (at least one)."""
    if survival_prob >= 1.0:
        return list(range(n_blocks))
    keep = (torch.rand(n_blocks) < survival_prob).tolist()
    if not any(keep):
        keep[random.randrange(n_blocks)] = True
    return [i for i, k in enumerate(keep) if k]


class KWMLP(nn.Module):
    """The KW-MLP encoder and its pretraining classifier.

    ``forward_features``: MFCC ``(B, n_mfcc, tokens)`` -> tokens ``(B, tokens, dim)`` (a view of
    the blocks' tokens-first layout); ``forward_head``: tokens -> logits ``(B, num_classes)``.
    """

    def __init__(self, config: KWMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = nn.Linear(config.n_mfcc, config.dim)
        self.blocks = nn.ModuleList(
            GatedMLPBlock(dim=config.dim, dim_ff=config.dim * config.ff_mult,
                          num_tokens=config.num_frames)
            for _ in range(config.depth)
        )
        self.head_norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.num_classes)

    def forward_features(self, mfcc: Tensor, depth: Optional[int] = None) -> Tensor:
        """Tokens after the first ``depth`` blocks (all by default). In training mode whole blocks
        are dropped at random (survival probability ``config.survival_prob``)."""
        if mfcc.shape[-1] != self.config.num_frames:
            raise ValueError(f"KW-MLP expects {self.config.num_frames} MFCC frames per chunk, "
                             f"got {mfcc.shape[-1]}")
        # tokens first, (tokens, B, dim), so that token mixing is one product for the batch
        x = onednn.linear(mfcc.permute(2, 0, 1), self.patch_embed.weight, self.patch_embed.bias)
        n = self.config.depth if depth is None else depth
        order = (surviving_blocks(n, self.config.survival_prob) if self.training
                 else range(n))
        for i in order:
            x = self.blocks[i](x)
        return x.transpose(0, 1)

    def forward_levels(self, mfcc: Tensor, depths: Sequence[int]) -> List[Tensor]:
        """Tokens ``(B, tokens, dim)`` after each of ``depths`` blocks (eval mode: no block is
        dropped), in one pass through the deepest."""
        if self.training:
            raise RuntimeError("forward_levels is for inference: call .eval() first")
        levels = {d: None for d in depths}
        x = self.forward_features(mfcc, depth=0).transpose(0, 1)
        for i in range(max(depths)):
            x = self.blocks[i](x)
            if i + 1 in levels:
                levels[i + 1] = x.transpose(0, 1)
        return [levels[d] for d in depths]

    def forward_head(self, tokens: Tensor) -> Tensor:
        return self.head(self.head_norm(tokens).mean(dim=1))

    def forward(self, mfcc: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(mfcc))
