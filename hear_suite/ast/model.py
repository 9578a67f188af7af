"""The Audio Spectrogram Transformer (Gong et al.; seed 002) with every positional encoding of
seed 003's study, as one configurable model.

``ASTConfig`` carries everything (frontend, window, patches, sequence order, width, depth, heads,
tokens, positional encoding, labels); a checkpoint stores it as a dict, so one weights file is one
variant. :data:`PRESETS` holds the papers' configurations; a variant is a field replaced::

    ASTConfig.preset("ast_pe", pos_embed="alibi_time")

Shapes: log-mel ``(B, n_mels, frames)`` -> patches on a grid ``(F, T)`` (bands x columns) ->
tokens ``(B, P + F * T, dim)`` with ``P`` = 1 (CLS) or 2 (CLS + distillation token) in front.
Every grid-dependent part follows the input's grid (see :mod:`hear_suite.ast.pos_embed`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import frontends, onednn
from hear_suite.ast import pos_embed as pe
from hear_suite.ast.pos_embed import Grid

FRONTENDS = ("log_mel", "kaldi_fbank")
NORMALIZATIONS = ("mean_std", "unit_range")
POS_EMBEDS = ("none", "absolute", "alibi_2d", "alibi_time", "relative_2d", "conditional",
              "conditional_absolute")


@dataclass(frozen=True)
class ASTConfig:
    """Everything that defines an AST. Defaults: seed 003's ``conditional`` model, from scratch."""

    # frontend: "log_mel", nnAudio's log-mel, log(mel power + log_offset); "kaldi_fbank", the
    # original AST's Kaldi filterbank (frontends.KaldiFbank: win_length-sample frames from sample
    # 0, n_fft the FFT size, log(max(fbank, log_offset))). Then normalised with training-set
    # statistics: "mean_std" (AST) (x - norm_mean) / (2 * norm_std); "unit_range" (seed 003)
    # (x - norm_min) / (norm_max - norm_min), negatives clipped to 0
    frontend: str = "log_mel"
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 1e-6
    normalization: str = "mean_std"
    norm_mean: float = 0.0
    norm_std: float = 0.5
    norm_min: float = 0.0
    norm_max: float = 1.0
    # the encoder sees windows of `window_frames` frames (992 = seed 003's 9.94 s)
    window_frames: int = 992
    # patches: Conv2d(1, dim, (patch_freq, patch_time), stride (stride_freq, stride_time))
    patch_freq: int = 8
    patch_time: int = 32
    stride_freq: int = 8
    stride_time: int = 32
    order: str = "time_major"
    # encoder
    dim: int = 768
    depth: int = 12
    heads: int = 12
    ff_dim: int = 2048
    activation: str = "relu"
    dropout: float = 0.1
    qkv_bias: bool = False
    norm_eps: float = 1e-5
    dist_token: bool = False
    embed_norm: bool = True      # seed 003: LayerNorm after the (absolute) positional embedding
    final_norm: bool = False     # AST / timm: LayerNorm after the last block
    head_norm: bool = False      # AST: LayerNorm before the classifier
    head_norm_eps: Optional[float] = None  # its epsilon when not norm_eps (original AST: 1e-5)
    pos_embed: str = "conditional"
    peg_blocks: int = 5          # conditional: a PEG after each of the first `peg_blocks` blocks
    labels: Tuple[str, ...] = field(default=("class0",))

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        problems: List[str] = []
        if self.frontend not in FRONTENDS:
            problems.append(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
        if self.pos_embed not in POS_EMBEDS:
            problems.append(f"pos_embed must be one of {POS_EMBEDS}, got {self.pos_embed!r}")
        if self.order not in pe.ORDERS:
            problems.append(f"order must be one of {pe.ORDERS}, got {self.order!r}")
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization must be one of {NORMALIZATIONS}, got "
                            f"{self.normalization!r}")
        if self.norm_max <= self.norm_min or self.log_offset <= 0:
            problems.append("need norm_max > norm_min and log_offset > 0")
        if self.activation not in ("relu", "gelu"):
            problems.append(f"activation must be relu or gelu, got {self.activation!r}")
        if min(self.dim, self.depth, self.heads, self.ff_dim, self.patch_freq, self.patch_time,
               self.stride_freq, self.stride_time) < 1:
            problems.append("sizes, patch shape and strides must be positive")
        elif self.dim % self.heads:
            problems.append(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.patch_freq > self.n_mels:
            problems.append(f"patch_freq {self.patch_freq} > n_mels {self.n_mels}")
        if self.window_frames < self.patch_time:
            problems.append(f"window_frames {self.window_frames} < patch_time {self.patch_time}")
        if self.pos_embed == "alibi_2d" and self.heads % 2:
            problems.append("alibi_2d needs an even number of heads")
        if self.pos_embed.startswith("conditional") and not 1 <= self.peg_blocks <= self.depth:
            problems.append(f"peg_blocks must be in 1..depth, got {self.peg_blocks}")
        if not 0.0 <= self.dropout < 1.0 or self.norm_std <= 0 or not self.labels:
            problems.append("need 0 <= dropout < 1, norm_std > 0 and at least one label")
        if problems:
            raise ValueError("invalid ASTConfig: " + "; ".join(problems))

    # -- derived sizes --------------------------------------------------------------------------
    @property
    def num_prefix(self) -> int:
        return 2 if self.dist_token else 1

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def grid(self, n_mels: Optional[int] = None, frames: Optional[int] = None) -> Grid:
        """Patch grid ``(bands, columns)`` of a ``n_mels x frames`` input (default: a window)."""
        n_mels = self.n_mels if n_mels is None else n_mels
        frames = self.window_frames if frames is None else frames
        if n_mels < self.patch_freq or frames < self.patch_time:
            raise ValueError(f"input {n_mels} x {frames} is smaller than one "
                             f"{self.patch_freq} x {self.patch_time} patch")
        return ((n_mels - self.patch_freq) // self.stride_freq + 1,
                (frames - self.patch_time) // self.stride_time + 1)

    @property
    def window_cols(self) -> int:
        return self.grid()[1]

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ASTConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown AST config keys {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ASTConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown AST preset {name!r}; choose from {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> "ASTConfig":
        return replace(self, **changes)


PRESETS: Dict[str, Dict[str, Any]] = {
    # Gong et al. / seed 002: 128 mel bins, 25 ms / 10 ms, 16x16 patches with stride 10,
    # frequency-major, CLS + distillation token, DeiT-base width, GELU, qkv bias, final norm.
    "ast": dict(n_mels=128, n_fft=400, win_length=400, hop_length=160, fmin=20.0, fmax=8000.0,
                window_frames=1024, patch_freq=16, patch_time=16, stride_freq=10, stride_time=10,
                order="freq_major", dim=768, depth=12, heads=12, ff_dim=3072, activation="gelu",
                dropout=0.0, qkv_bias=True, norm_eps=1e-6, dist_token=True, embed_norm=False,
                final_norm=True, head_norm=True, pos_embed="absolute"),
    # seed 002's non-overlapping patches
    "ast_no_overlap": dict(n_mels=128, n_fft=400, win_length=400, hop_length=160, fmin=20.0,
                           fmax=8000.0, window_frames=1024, patch_freq=16, patch_time=16,
                           stride_freq=16, stride_time=16, order="freq_major", dim=768, depth=12,
                           heads=12, ff_dim=3072, activation="gelu", dropout=0.0, qkv_bias=True,
                           norm_eps=1e-6, dist_token=True, embed_norm=False, final_norm=True,
                           head_norm=True, pos_embed="absolute"),
    # seed 003: 64 mel bins 125-7500 Hz, log(x + 0.001) mapped to [0, 1], 8 mel x 32 frame
    # patches, time-major, 12 x 768, ReLU FF
    "ast_pe": dict(log_offset=1e-3, normalization="unit_range"),
    # the tests' tiny model: seed 003's layout, 3.2 s windows, 4 blocks of width 128
    "small": dict(window_frames=320, dim=128, depth=4, heads=4, ff_dim=384, peg_blocks=2),
    # the PE study's CPU-sized model (2.7 M parameters): the same layout, 4 blocks of width 256
    "medium": dict(window_frames=320, dim=256, depth=4, heads=4, ff_dim=768, peg_blocks=2),
    # medium on seed 002's input, 128 mel bands over 20-8000 Hz; patches 16 bands high keep the
    # token grid (8 x 10 per 3.2 s window), hence the cost, of medium
    "medium_128": dict(n_mels=128, fmin=20.0, fmax=8000.0, patch_freq=16, stride_freq=16,
                       window_frames=320, dim=256, depth=4, heads=4, ff_dim=768, peg_blocks=2),
}


class PatchEmbed(nn.Module):
    """``Conv2d(1, dim, (patch_freq, patch_time), stride)``: log-mel ``(B, M, T)`` -> tokens
    ``(B, F * T', dim)`` in sequence order and the grid ``(F, T')``. Non-overlapping patches make
    it seed 003's ``Linear(256 -> 768)`` on flattened patches."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        self.order = config.order
        self.proj = nn.Conv2d(1, config.dim, (config.patch_freq, config.patch_time),
                              stride=(config.stride_freq, config.stride_time))

    def forward(self, mel: Tensor) -> Tuple[Tensor, Grid]:
        x = self.proj(mel[:, None])                                  # (B, D, F, T')
        return pe.grid_to_tokens(x, self.order), (x.shape[2], x.shape[3])


class Attention(nn.Module):
    """Multi-head self-attention; logits ``(Q K^T + R) / sqrt(d_head)`` with an optional bias
    ``R`` (ALiBi: fixed ``(H, N, N)``; relative: computed from ``Q`` per block)."""

    def __init__(self, config: ASTConfig, relative: bool) -> None:
        super().__init__()
        self.heads, self.scale = config.heads, config.head_dim ** -0.5
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=config.qkv_bias)
        self.proj = nn.Linear(config.dim, config.dim, bias=config.qkv_bias)
        self.dropout = config.dropout
        self.relative = (pe.RelativePosition2D(head_dim=config.head_dim,
                                               max_grid=config.grid()) if relative else None)

    def forward(self, x: Tensor, *, grid: Grid, order: str, num_prefix: int,
                bias: Optional[Tensor] = None) -> Tensor:
        b, n, d = x.shape
        qkv = onednn.linear(x, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.relative is not None:
            rel = self.relative(q, grid=grid, order=order, num_prefix=num_prefix)
            bias = rel if bias is None else bias + rel
        mask = None if bias is None else bias * self.scale           # SDPA adds it after scaling
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return onednn.linear(out.transpose(1, 2).reshape(b, n, d), self.proj.weight,
                             self.proj.bias)


class MLP(nn.Module):
    """``fc2(dropout(activation(fc1(x))))`` (timm's names, so ViT weights load as they are); for
    inference on the CPU ``fc1`` and its activation are one oneDNN kernel."""

    def __init__(self, *, dim: int, ff_dim: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, ff_dim)
        self.activation = activation
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(ff_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = onednn.linear(x, self.fc1.weight, self.fc1.bias, activation=self.activation)
        return onednn.linear(self.drop1(h), self.fc2.weight, self.fc2.bias)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, config: ASTConfig, relative: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.attn = Attention(config, relative)
        self.norm2 = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.mlp = MLP(dim=config.dim, ff_dim=config.ff_dim, activation=config.activation,
                       dropout=config.dropout)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, **ctx: Any) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), **ctx))
        return x + self.drop(self.mlp(self.norm2(x)))


class AST(nn.Module):
    """AST encoder and classifier.

    ``forward_features``: normalised log-mel ``(B, n_mels, frames)`` -> tokens
    ``(B, P + F * T, dim)`` (prefix first); ``forward_head``: tokens -> logits ``(B, classes)``
    from the mean of the prefix tokens (CLS, or CLS and distillation token as in AST).
    """

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        self.config = config
        c, kind = config, config.pos_embed
        self.patch_embed = PatchEmbed(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.dist_token else None
        self.pos_embed: Optional[nn.Module] = None
        if kind in ("absolute", "conditional_absolute"):
            self.pos_embed = pe.AbsolutePosEmbed(dim=c.dim, grid=c.grid(), num_prefix=c.num_prefix,
                                                 order=c.order)
        elif kind == "alibi_time":
            self.pos_embed = pe.BandPosEmbed(dim=c.dim, n_bands=c.grid()[0],
                                             num_prefix=c.num_prefix, order=c.order)
        self.embed_norm = nn.LayerNorm(c.dim, eps=c.norm_eps) if c.embed_norm else nn.Identity()
        self.blocks = nn.ModuleList(
            Block(c, relative=kind == "relative_2d") for _ in range(c.depth))
        n_peg = c.peg_blocks if kind.startswith("conditional") else 0
        self.pegs = nn.ModuleList(pe.PEG(dim=c.dim, num_prefix=c.num_prefix, cls_vector=i == 0)
                                  for i in range(n_peg))
        self.norm = nn.LayerNorm(c.dim, eps=c.norm_eps) if c.final_norm else nn.Identity()
        head_eps = c.norm_eps if c.head_norm_eps is None else c.head_norm_eps
        self.head_norm = nn.LayerNorm(c.dim, eps=head_eps) if c.head_norm else nn.Identity()
        self.head = nn.Linear(c.dim, c.num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)

    def alibi(self, grid: Grid, device: torch.device) -> Optional[Tensor]:
        kind = self.config.pos_embed
        if kind not in ("alibi_2d", "alibi_time"):
            return None
        return pe.alibi_bias(grid=grid, order=self.config.order, n_heads=self.config.heads,
                             num_prefix=self.config.num_prefix, mode=kind[len("alibi_"):],
                             device=device)

    def forward_features(self, mel: Tensor) -> Tensor:
        """``(B, n_mels, frames)`` -> output tokens ``(B, prefix + patches, dim)``."""
        return self.forward_levels(mel, (self.config.depth,))[0]

    def forward_levels(self, mel: Tensor, depths: Sequence[int]) -> List[Tensor]:
        """Tokens ``(B, prefix + patches, dim)`` after each of ``depths`` blocks, in one pass:
        after the last block through the final norm, after a middle one through a LayerNorm
        without affine parameters (the model has no norm there; a middle level is thus on the
        final one's scale)."""
        c = self.config
        if mel.ndim != 3 or mel.shape[1] != c.n_mels:
            raise ValueError(f"AST expects log-mel (batch, {c.n_mels}, frames), got "
                             f"{tuple(mel.shape)}")
        c.grid(mel.shape[1], mel.shape[2])  # raises for inputs shorter than one patch
        x, grid = self.patch_embed(mel)
        prefix = [self.cls_token] + ([self.dist_token] if self.dist_token is not None else [])
        x = torch.cat([t.expand(x.shape[0], -1, -1) for t in prefix] + [x], dim=1)
        if self.pos_embed is not None:
            x = self.pos_embed(x, grid)
        x = self.embed_norm(x)
        ctx = dict(grid=grid, order=c.order, num_prefix=c.num_prefix,
                   bias=self.alibi(grid, x.device))
        levels = {}
        for i, block in enumerate(self.blocks[:max(depths)]):
            x = block(x, **ctx)
            if i < len(self.pegs):
                x = self.pegs[i](x, grid, c.order)
            if i + 1 in depths:
                levels[i + 1] = (self.norm(x) if i + 1 == c.depth
                                 else F.layer_norm(x, x.shape[-1:], eps=c.norm_eps))
        return [levels[d] for d in depths]

    def forward_head(self, tokens: Tensor) -> Tensor:
        return self.head(self.head_norm(tokens[:, :self.config.num_prefix].mean(dim=1)))

    def forward(self, mel: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(mel))


class Frontend(nn.Module):
    """The config's log-mel, normalised: ``(n, samples)`` -> ``(n, n_mels, frames)``,
    ``frames = 1 + (samples - frame_length) // hop_length`` (frame k starts at sample
    ``k * hop``; ``frame_length`` is ``n_fft`` for nnAudio's log-mel, ``win_length`` for
    Kaldi's filterbank)."""

    def __init__(self, config: ASTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.frontend == "kaldi_fbank":
            self.log_mel = frontends.kaldi_fbank(sample_rate=c.sample_rate, n_mels=c.n_mels,
                                                 n_fft=c.n_fft, win_length=c.win_length,
                                                 hop_length=c.hop_length, fmin=c.fmin,
                                                 fmax=c.fmax, floor=c.log_offset)
            self.frame_length = c.win_length
        else:
            self.log_mel = frontends.log_mel(sample_rate=c.sample_rate, n_mels=c.n_mels,
                                             n_fft=c.n_fft, win_length=c.win_length,
                                             hop_length=c.hop_length, fmin=c.fmin, fmax=c.fmax,
                                             eps=c.log_offset)
            self.frame_length = c.n_fft

    def num_frames(self, n_samples: int) -> int:
        """Whole frames in ``n_samples`` (0 when shorter than one frame)."""
        return max(0, 1 + (n_samples - self.frame_length) // self.config.hop_length)

    def forward(self, audio: Tensor, spectrum_transform=None) -> Tensor:
        return normalize(self.log_mel(audio, spectrum_transform), self.config)


def normalize(log_mel: Tensor, config: ASTConfig) -> Tensor:
    """The config's normalisation of a log-mel (any shape)."""
    if config.normalization == "unit_range":
        return ((log_mel - config.norm_min) / (config.norm_max - config.norm_min)).clamp(min=0)
    return (log_mel - config.norm_mean) / (2 * config.norm_std)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
