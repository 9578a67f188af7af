"""Bag of codes (Verma): four views of a log-mel second, an MLP autoencoder per view, a k-means
code book per view; a second of audio becomes the histogram of its codes.

Views of a ``96 x 100`` log-mel second (mel x frames), ``config`` defaults in brackets:

=======  ==============================================  =========  ===========
view     vector                                          dim        per second
=======  ==============================================  =========  ===========
``pat``  patch of 8 mel bins x 10 frames on a grid       80         120
``fenv`` band envelope: 8 mel bins x 100 frames          800        12
``env``  spectral envelope: 96 bins x 10 frames          960        10
``o``    the whole second resized bicubically to 8 x 10  80         1
=======  ==============================================  =========  ===========

:func:`view_vectors` cuts the views at every ``step`` frames of a longer spectrogram (the grid of
one second is ``step`` 10 for ``pat``/``env`` and 100 for ``fenv``/``o``); :class:`BagOfCodes`
holds the frontend, the input standardisation, the four encoders and the four code books, and
turns spectrogram positions into codes. Decoders exist only while training (``train.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import frontends, onednn

VIEWS: Tuple[str, ...] = ("pat", "fenv", "env", "o")


@dataclass(frozen=True)
class BagOfCodesConfig:
    """Everything that defines a bag-of-codes model. Defaults: the paper's frontend and views;
    ``width`` 2048 and ``compression`` 10 or 20 are the paper's autoencoders."""

    # frontend: nnAudio log mel spectrogram, Hann window
    sample_rate: int = 16000
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 8000.0
    n_fft: int = 2048
    win_length: int = 480      # 30 ms
    hop_length: int = 160      # 10 ms
    log_eps: float = 1e-6
    # views
    unit_frames: int = 100     # one second: the span of `fenv` and `o`
    patch_bins: int = 8        # `pat` and `fenv` band height
    patch_frames: int = 10     # `pat` and `env` width (100 ms)
    small_bins: int = 8        # `o`: the second resized to small_bins x small_frames
    small_frames: int = 10
    # autoencoders
    width: int = 2048
    depth: int = 3             # linear layers of the encoder (and of the decoder)
    compression: int = 10      # bottleneck = input dim // compression
    dropout: float = 0.5
    # code books
    codebook_size: int = 256

    def __post_init__(self) -> None:
        if self.n_mels % self.patch_bins:
            raise ValueError(f"n_mels {self.n_mels} must be a multiple of patch_bins "
                             f"{self.patch_bins}")
        if self.unit_frames % self.patch_frames:
            raise ValueError("unit_frames must be a multiple of patch_frames")
        for name in ("width", "depth", "compression", "codebook_size", "small_bins",
                     "small_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def input_dims(self) -> Dict[str, int]:
        return {"pat": self.patch_bins * self.patch_frames,
                "fenv": self.patch_bins * self.unit_frames,
                "env": self.n_mels * self.patch_frames,
                "o": self.small_bins * self.small_frames}

    @property
    def bottlenecks(self) -> Dict[str, int]:
        return {v: max(1, d // self.compression) for v, d in self.input_dims.items()}

    @property
    def spans(self) -> Dict[str, int]:
        """Frames one vector of each view covers."""
        return {"pat": self.patch_frames, "fenv": self.unit_frames,
                "env": self.patch_frames, "o": self.unit_frames}

    @property
    def per_position(self) -> Dict[str, int]:
        """Vectors of each view at one position: one per band (12) for ``pat``/``fenv``, else 1."""
        bands = self.n_mels // self.patch_bins
        return {"pat": bands, "fenv": bands, "env": 1, "o": 1}

    @property
    def per_unit(self) -> Dict[str, int]:
        """Vectors of each view in one second on the grid: 120, 12, 10, 1."""
        bands = self.n_mels // self.patch_bins
        blocks = self.unit_frames // self.patch_frames
        return {"pat": bands * blocks, "fenv": bands, "env": blocks, "o": 1}

    @property
    def embedding_size(self) -> int:
        return len(VIEWS) * self.codebook_size

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "BagOfCodesConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown bag-of-codes config keys {sorted(unknown)}")
        return cls(**d)


def build_frontend(config: BagOfCodesConfig) -> nn.Module:
    """nnAudio log-mel layer: ``(n, samples)`` -> ``(n, n_mels, frames)``."""
    return frontends.log_mel(sample_rate=config.sample_rate, n_mels=config.n_mels,
                             n_fft=config.n_fft, win_length=config.win_length,
                             hop_length=config.hop_length, fmin=config.fmin, fmax=config.fmax,
                             eps=config.log_eps)


# ---------------------------------------------------------------------------------------------
# views


def view_vectors(x: Tensor, config: BagOfCodesConfig, view: str, step: int) -> Tensor:
    """Vectors of ``view`` at frames ``0, step, 2 step, ...`` of ``x (B, n_mels, T)``.

    Returns ``(B, P, per_position, dim)`` with ``P = (T - span) // step + 1`` positions (0 when
    ``T < span``) and ``per_position`` = 12 (``pat``, ``fenv``: one per band, low to high) or 1.
    """
    b, n_mels, t = x.shape
    span = config.spans[view]
    dim = config.input_dims[view]
    if t < span:
        return x.new_zeros(b, 0, config.per_position[view], dim)
    w = x.unfold(-1, span, step)                                   # (B, n_mels, P, span)
    p = w.shape[2]
    if view in ("pat", "fenv"):
        bands = n_mels // config.patch_bins
        w = w.reshape(b, bands, config.patch_bins, p, span).permute(0, 3, 1, 2, 4)
        return w.reshape(b, p, bands, dim)
    if view == "env":
        return w.permute(0, 2, 1, 3).reshape(b, p, 1, dim)
    if view == "o":
        w = w.permute(0, 2, 1, 3).reshape(b * p, 1, n_mels, span)
        small = F.interpolate(w, size=(config.small_bins, config.small_frames), mode="bicubic",
                              align_corners=False, antialias=True)
        return small.reshape(b, p, 1, dim)
    raise ValueError(f"unknown view {view!r}; views are {VIEWS}")


def random_view_vectors(x: Tensor, lengths: Tensor, config: BagOfCodesConfig, view: str,
                        n: int, generator: torch.Generator) -> Tensor:
    """``n`` vectors of ``view`` at random positions (the paper's training sampling).

    ``x (N, n_mels, T)`` holds N spectrograms right-padded to T frames, ``lengths (N,)`` their
    true frame counts (each >= the view's span). Random clip, random start frame, and for ``pat``
    and ``fenv`` a random start bin (any of ``n_mels - 8 + 1``). Returns ``(n, dim)``.
    """
    span = config.spans[view]
    clip = torch.randint(0, x.shape[0], (n,), generator=generator)
    start = (torch.rand(n, generator=generator) * (lengths[clip] - span + 1)).long()
    t = start[:, None] + torch.arange(span)
    rows = x[clip[:, None, None], torch.arange(x.shape[1])[None, :, None], t[:, None, :]]
    if view in ("pat", "fenv"):                                      # rows: (n, n_mels, span)
        lo = torch.randint(0, config.n_mels - config.patch_bins + 1, (n,), generator=generator)
        bins = lo[:, None] + torch.arange(config.patch_bins)
        rows = rows[torch.arange(n)[:, None], bins]
    if view == "o":
        rows = F.interpolate(rows[:, None], size=(config.small_bins, config.small_frames),
                             mode="bicubic", align_corners=False, antialias=True)
    return rows.reshape(n, config.input_dims[view])


# ---------------------------------------------------------------------------------------------
# autoencoder halves and code books


def mlp(dims: Tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear layers through ``dims``; ReLU and dropout between them (none after the last)."""
    layers: list = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def run_mlp(layers: nn.Sequential, x: Tensor) -> Tensor:
    """``layers(x)`` for an :func:`mlp`, each Linear and the ReLU after it as one
    :func:`hear_suite.onednn.linear` (one oneDNN kernel for inference on the CPU)."""
    modules = list(layers)
    for i, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            relu = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
            x = onednn.linear(x, module.weight, module.bias, activation="relu" if relu else None)
        elif not isinstance(module, nn.ReLU):  # dropout; each ReLU went with its Linear
            x = module(x)
    return x


def encoder_dims(config: BagOfCodesConfig, view: str) -> Tuple[int, ...]:
    """``input, width, ..., bottleneck``: ``depth`` linear layers."""
    return (config.input_dims[view], *([config.width] * (config.depth - 1)),
            config.bottlenecks[view])


def build_encoder(config: BagOfCodesConfig, view: str) -> nn.Sequential:
    return mlp(encoder_dims(config, view), config.dropout)


def build_decoder(config: BagOfCodesConfig, view: str) -> nn.Sequential:
    """The encoder mirrored: bottleneck -> width ... -> input."""
    return mlp(tuple(reversed(encoder_dims(config, view))), config.dropout)


class Codebook(nn.Module):
    """``D`` centroids ``(D, dim)``; :meth:`assign` is the nearest-centroid search (squared
    Euclidean distance, the lowest index on ties) as one matrix product on their device."""

    def __init__(self, *, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("centroids", torch.zeros(size, dim))

    def assign(self, z: Tensor) -> Tensor:
        """``(..., dim)`` -> codes ``(...,)`` int64."""
        c = self.centroids
        # argmin |z - c|^2 = argmin (|c|^2 - 2 z.c); |z|^2 is the same for every centroid
        score = onednn.linear(z.reshape(-1, c.shape[1]), -2.0 * c, (c * c).sum(1))
        return score.argmin(dim=1).reshape(z.shape[:-1])


class BagOfCodes(nn.Module):
    """Frontend, input standardisation (``mel_mean``, ``mel_std``: scalars measured on the
    training corpus), the encoder and code book of each view.

    ``log_mel``: audio ``(n, samples)`` -> standardised log mel ``(n, n_mels, frames)``;
    ``codes``: spectrogram -> codes of one view at every ``step`` frames;
    ``counts``: those codes -> per-position histograms ``(B, P, D)``.
    """

    def __init__(self, config: BagOfCodesConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = build_frontend(config)
        self.register_buffer("mel_mean", torch.zeros(()))
        self.register_buffer("mel_std", torch.ones(()))
        self.encoders = nn.ModuleDict({v: build_encoder(config, v) for v in VIEWS})
        self.codebooks = nn.ModuleDict({
            v: Codebook(size=config.codebook_size, dim=config.bottlenecks[v]) for v in VIEWS})

    @property
    def device(self) -> torch.device:
        return self.mel_mean.device

    def log_mel(self, audio: Tensor) -> Tensor:
        return (self.frontend(audio) - self.mel_mean) / self.mel_std

    def encode(self, view: str, vectors: Tensor) -> Tensor:
        """``(..., input_dim)`` -> bottleneck ``(..., bottleneck)``."""
        return run_mlp(self.encoders[view], vectors)

    def encode_levels(self, view: str, vectors: Tensor, middle: int) -> Tuple[Tensor, Tensor]:
        """``(..., input_dim)`` -> bottleneck and the output of encoder layer ``middle`` (after
        its ReLU; ``middle`` = ``depth`` is the bottleneck itself), in one pass."""
        layers = list(self.encoders[view])
        # layer k (1-based) ends after its Linear, ReLU and Dropout: 3 modules each
        cut = min(3 * middle, len(layers))
        hidden = run_mlp(nn.Sequential(*layers[:cut]), vectors)
        return run_mlp(nn.Sequential(*layers[cut:]), hidden), hidden

    def middle_dims(self, middle: int) -> Dict[str, int]:
        """Width of encoder layer ``middle`` of each view."""
        return {v: encoder_dims(self.config, v)[middle] for v in VIEWS}

    def codes(self, x: Tensor, view: str, step: int, max_values: int = 1 << 21,
              middle: Optional[int] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Codes of ``view`` at every ``step`` frames of ``x (B, n_mels, T)``:
        ``(B, P, per_position)`` int64; with ``middle``, also the sum over the position's
        vectors of encoder layer ``middle``'s output, ``(B, P, middle_dims[view])``. The vectors
        are cut out and encoded a run of positions at a time, at most about ``max_values`` input
        values at once (a ``fenv`` position holds 12 x 800 values), so memory stays flat on long
        spectrograms."""
        c = self.config
        span, dim, per = c.spans[view], c.input_dims[view], c.per_position[view]
        b, _, t = x.shape
        n_pos = max(0, (t - span) // step + 1)
        if n_pos == 0:
            codes = torch.zeros(b, 0, per, dtype=torch.long, device=x.device)
            if middle is None:
                return codes
            return codes, x.new_zeros(b, 0, self.middle_dims(middle)[view])
        chunk = max(1, max_values // (b * per * dim))
        out, hidden = [], []
        for p0 in range(0, n_pos, chunk):
            p1 = min(n_pos, p0 + chunk)
            vec = view_vectors(x[:, :, p0 * step:(p1 - 1) * step + span], c, view, step)
            if middle is None:
                out.append(self.codebooks[view].assign(self.encode(view, vec)))
            else:
                z, h = self.encode_levels(view, vec, middle)
                out.append(self.codebooks[view].assign(z))
                hidden.append(h.sum(dim=2))
        if middle is None:
            return torch.cat(out, dim=1)
        return torch.cat(out, dim=1), torch.cat(hidden, dim=1)

    def counts(self, codes: Tensor) -> Tensor:
        """``(B, P, k)`` codes -> ``(B, P, D)`` float32 counts (each row sums to ``k``)."""
        out = torch.zeros(*codes.shape[:2], self.config.codebook_size, device=codes.device)
        return out.scatter_add_(2, codes, torch.ones(codes.shape, device=codes.device))

    def unit_histograms(self, units: Tensor, middle: Optional[int] = None) -> Tensor:
        """Bag of codes of whole seconds on the paper's grid: ``(B, n_mels, 100)`` ->
        ``(B, 4 D)`` raw counts (per view summing to 120, 12, 10, 1); with ``middle``, followed
        by each view's mean output of encoder layer ``middle`` over the second's vectors
        (``(B, 4 D + sum(middle_dims))``)."""
        c = self.config
        steps = {"pat": c.patch_frames, "fenv": c.unit_frames, "env": c.patch_frames,
                 "o": c.unit_frames}
        if middle is None:
            return torch.cat([self.counts(self.codes(units, v, steps[v])).sum(1) for v in VIEWS],
                             1)
        hists, means = [], []
        for v in VIEWS:
            codes, hidden = self.codes(units, v, steps[v], middle=middle)
            hists.append(self.counts(codes).sum(1))
            means.append(hidden.sum(1) / c.per_unit[v])
        return torch.cat(hists + means, 1)
