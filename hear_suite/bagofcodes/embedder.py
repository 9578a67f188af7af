"""Bag of codes as a HEAR embedding model: framing, seconds, windows, cumulative sums.

Frames. Log-mel frame ``k`` is centred on sample ``k * hop`` (10 ms), computed from the clip
with zeros outside it; a clip of ``L`` samples has ``ceil(L / hop)`` frames. The frames are
computed in blocks of at most ``max_frames`` (clips x frames) from the original tensor, so the
memory stays flat on long audio.

Scene (``(n, 4 D)``): the clip is cut into consecutive seconds (100 frames) on the paper's grid;
the last second is moved back to end with the clip (it overlaps the one before instead of
counting padding), and a clip shorter than one second is zero-padded to one second. The scene
embedding is the sum of the seconds' histograms divided by the number of seconds: per-second
counts, so a clip of any length is comparable (one second: the raw counts 120/12/10/1).

Timestamps (``(n, T, 4 D)``): timestamps ``0, hop, 2 hop, ...`` ms up to the end of the clip;
the embedding at ``t`` is the bag of codes of a window of ``window_ms`` (default 1 s) centred on
``t``, divided by the window's length in seconds. At the edges the window is moved inside the clip
(to the nearest start on the hop grid), so it never counts audio that is not there; a clip shorter
than the window is zero-padded at the end (every timestamp then sees the whole clip). The
codes are computed once per position (``pat``/``env`` every hop, each 100 ms patch; ``fenv``/``o``
every hop, each one-second span), and each window's histogram is a difference of cumulative
sums taken along positions 100 ms (``pat``/``env``) or 1 s (``fenv``/``o``) apart: the
window's own grid, at a cost that does not grow with the window.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from hear_suite.audio import check_audio, frame_timestamps, padded_chunks
from hear_suite.bagofcodes.model import VIEWS, BagOfCodes, BagOfCodesConfig
from hear_suite.hear_api import check_levels
from hear_suite.logmel.embedder import FloorPart
from hear_suite.streaming import TimestampSink, block_timestamps


TIMESTAMP_BLOCK = 8
# What the histogram part of an embedding holds: the paper's per-second counts, or their square
# root or log(1 + counts) (both compress the few codes that fill most of a second).
HISTOGRAM_SCALINGS = {"counts": lambda h: h, "sqrt": torch.sqrt, "log1p": torch.log1p}
# Default scaling by variant: "2level+mel" compresses the counts. Measured on the real suite
# (results/real_suite.md): beside the middle level and the floor's log-mel, raw counts (up to
# ~100 for the commonest code) led heareval's probe, and log1p scored higher on 4 of 5 tasks
# (pitch +0.045, spoken words +0.13, mixtures +0.054).
DEFAULT_SCALING = {"final": "counts", "2level": "counts", "2level+mel": "log1p"}
# Encoder layer whose mean output is the middle level of "2level": measured on the real suite
# (results/real_suite.md, "Choosing the middle depth").
MIDDLE_DEPTH = 2


def windowed_counts(counts: Tensor, starts: Tensor, *, stride: int, n_blocks: int) -> Tensor:
    """Sum of ``counts[:, i + stride * k]`` for ``k < n_blocks``, for every ``i`` in ``starts``.

    ``counts (B, P, D)`` per-position histograms; ``starts (J,)`` position indices with
    ``starts + stride * (n_blocks - 1) < P``. Cumulative sums along each residue class modulo
    ``stride``, so the cost does not depend on ``n_blocks``. Returns ``(B, J, D)``.
    """
    b, p, d = counts.shape
    if n_blocks == 0 or p == 0:
        return counts.new_zeros(b, len(starts), d)
    rows = math.ceil(p / stride) + 1
    padded = counts.new_zeros(b, rows * stride, d)
    padded[:, stride:stride + p] = counts
    # cum[:, j] = counts[:, j - stride] + counts[:, j - 2 stride] + ... (exclusive prefix)
    cum = padded.reshape(b, rows, stride, d).cumsum(1).reshape(b, rows * stride, d)
    return cum[:, starts + stride * n_blocks] - cum[:, starts]


class BagOfCodesEmbedder(nn.Module):
    """HEAR model: ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``
    (both ``4 D`` for ``final``). Options: ``timestamp_hop_ms`` (10, 20 or 50; default 50),
    ``timestamp_window_ms`` (a multiple of 100 ms; default 1000), ``histogram_scaling``
    (``counts``, the paper's, | ``sqrt`` | ``log1p``; default by ``embedding``,
    :data:`DEFAULT_SCALING`), ``embedding`` (``final`` | ``2level`` |
    ``2level+mel``, :data:`hear_suite.hear_api.EMBEDDINGS`) with ``middle_depth`` (the encoder
    layer, 1..depth, whose output averaged over the window's vectors of each view is the middle
    level; ``depth`` is the bottleneck the codes quantise), ``max_frames`` (spectrogram frames,
    all clips together, computed at once: bounds memory, not results).

    Sizes (``bagofcodes_real.pt``: D 256, width 256, bottlenecks 8/80/96/8): ``final`` 1,024,
    ``2level`` 1,024 + the middle layer's widths (1,216 at the bottleneck), ``2level+mel`` that +
    128 per timestamp and + 256 per scene."""

    def __init__(self, model: BagOfCodes, *, timestamp_hop_ms: int = 50,
                 timestamp_window_ms: int = 1000, histogram_scaling: Optional[str] = None,
                 embedding: str = "final", middle_depth: int = MIDDLE_DEPTH,
                 max_frames: int = 2000) -> None:
        super().__init__()
        config = model.config
        frame_ms = 1000 * config.hop_length / config.sample_rate
        patch_ms = frame_ms * config.patch_frames
        allowed = [int(frame_ms * h) for h in range(1, config.patch_frames + 1)
                   if config.patch_frames % h == 0 and frame_ms * h <= 50]
        if timestamp_hop_ms not in allowed:
            raise ValueError(f"timestamp_hop_ms must be one of {allowed} (a whole number of "
                             f"frames dividing {patch_ms:g} ms, at most 50 ms), got "
                             f"{timestamp_hop_ms!r}")
        if (not isinstance(timestamp_window_ms, int) or timestamp_window_ms <= 0
                or timestamp_window_ms % patch_ms):
            raise ValueError(f"timestamp_window_ms must be a positive multiple of {patch_ms:g} "
                             f"ms, got {timestamp_window_ms!r}")
        if not isinstance(max_frames, int) or max_frames < config.unit_frames:
            raise ValueError(f"max_frames must be an int >= {config.unit_frames}, got "
                             f"{max_frames!r}")
        if histogram_scaling is None:
            histogram_scaling = DEFAULT_SCALING.get(embedding, "counts")
        if histogram_scaling not in HISTOGRAM_SCALINGS:
            raise ValueError(f"histogram_scaling must be one of {sorted(HISTOGRAM_SCALINGS)}, "
                             f"got {histogram_scaling!r}")
        self.middle = check_levels(embedding, middle_depth, deepest=config.depth,
                                   what="encoder layer")
        self.config: BagOfCodesConfig = config
        self.model = model.eval()
        self.histogram_scaling = histogram_scaling
        self._scale = HISTOGRAM_SCALINGS[histogram_scaling]
        self.embedding = embedding
        self.mel = FloorPart(first_ms=0.0, hop_ms=float(timestamp_hop_ms),
                             enabled=embedding == "2level+mel")
        self.timestamp_hop_ms = timestamp_hop_ms
        self.timestamp_window_ms = timestamp_window_ms
        self.max_frames = max_frames
        self.hop_frames = round(timestamp_hop_ms / frame_ms)
        self.window_frames = round(timestamp_window_ms / frame_ms)
        self.sample_rate = config.sample_rate
        self.width = config.embedding_size + (
            0 if self.middle is None else sum(model.middle_dims(self.middle).values()))
        self.scene_embedding_size = self.width + self.mel.scene_size
        self.timestamp_embedding_size = self.width + self.mel.timestamp_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -----------------------------------------------------------------------------------------
    # frames

    def num_frames(self, n_samples: int) -> int:
        return max(1, math.ceil(n_samples / self.config.hop_length))

    def frames(self, audio: Tensor, start: int, stop: int) -> Tensor:
        """Standardised log-mel frames ``start..stop-1`` of every clip of ``audio (n, L)``
        (frame k centred on sample ``k * hop``, zeros outside the clip), on the model's device:
        ``(n, n_mels, stop - start)``. The frontend runs on at most ``max_frames`` frames (all
        clips together) at a time: its STFT holds 2050 values per frame."""
        c = self.config
        per_call = max(1, self.max_frames // audio.shape[0])
        parts = []
        for f0 in range(start, stop, per_call):
            f1 = min(stop, f0 + per_call)
            width = (f1 - f0 - 1) * c.hop_length + c.win_length
            piece = padded_chunks(audio, chunk=width, pad_front=c.win_length // 2
                                  - f0 * c.hop_length, start=0, stop=1)
            parts.append(self.model.log_mel(piece[:, 0].to(self.device)))
        return torch.cat(parts, dim=2)

    # -----------------------------------------------------------------------------------------
    # scene

    def unit_starts(self, n_samples: int) -> Tensor:
        """First frame of each second the scene embedding counts (see module docstring)."""
        unit = self.config.unit_frames
        total = max(self.num_frames(n_samples), unit)
        starts = torch.arange(math.ceil(total / unit)) * unit
        return starts.clamp(max=total - unit)

    def second_blocks(self, audio: Tensor) -> Iterator[Tuple[slice, slice, Tensor]]:
        """``(clips, seconds, raw bags of codes (clips, seconds, 4 D))`` of the seconds the
        scene embedding counts (:meth:`unit_starts`), in blocks of about ``max_frames`` frames,
        for ``audio (n, L)`` (or a :class:`~hear_suite.streaming.ClipSource`), on the model's
        device."""
        n = audio.shape[0]
        unit = self.config.unit_frames
        starts = self.unit_starts(audio.shape[1])
        clips_per_block = max(1, self.max_frames // unit)
        units_per_block = max(1, self.max_frames // (unit * min(n, clips_per_block)))
        for c0 in range(0, n, clips_per_block):
            clips = slice(c0, min(n, c0 + clips_per_block))
            for u0 in range(0, len(starts), units_per_block):
                block = starts[u0:u0 + units_per_block]
                lo, hi = int(block[0]), int(block[-1]) + unit
                x = self.frames(audio[clips], lo, hi)
                idx = (block - lo)[:, None] + torch.arange(unit)             # (K, unit)
                units = x[:, :, idx.to(x.device)]                            # (B, mels, K, unit)
                b, m, k, _ = units.shape
                units = units.permute(0, 2, 1, 3).reshape(b * k, m, unit)
                hist = self.model.unit_histograms(units, middle=self.middle)
                yield clips, slice(u0, u0 + k), hist.reshape(b, k, -1)

    @torch.no_grad()
    def second_histograms(self, audio: Tensor) -> Tensor:
        """``(n, L)`` -> ``(n, K, width)``: the raw bag of codes of each second the scene
        embedding counts (:meth:`unit_starts`), then the middle level for ``2level``, on the
        model's device."""
        audio = check_audio(audio)
        out = torch.zeros(audio.shape[0], len(self.unit_starts(audio.shape[1])),
                          self.width, device=self.device)
        for clips, seconds, hist in self.second_blocks(audio):
            out[clips, seconds] = hist
        return out

    def scaled(self, emb: Tensor) -> Tensor:
        """``histogram_scaling`` applied to the histogram part of ``(..., width)``."""
        if self.histogram_scaling == "counts":
            return emb
        d = self.config.embedding_size
        return torch.cat([self._scale(emb[..., :d]), emb[..., d:]], dim=-1)

    @torch.no_grad()
    def scene_embeddings(self, audio: Tensor) -> Tensor:
        """``(n, L)`` -> ``(n, scene_embedding_size)`` float32: per-second bag of codes over
        the whole clip (then the middle level, then the floor's scene, as ``embedding`` asks)."""
        audio = check_audio(audio)
        scene = self.scaled(self.second_histograms(audio).mean(dim=1)).to(audio.device)
        return self.mel.after_scene(scene, audio)

    # -----------------------------------------------------------------------------------------
    # timestamps

    def num_timestamps(self, n_samples: int) -> int:
        """Timestamps ``0, hop, ...`` not after the end of the clip."""
        return n_samples * 1000 // (self.sample_rate * self.timestamp_hop_ms) + 1

    def window_starts(self, n_samples: int) -> Tensor:
        """First frame of the window of each timestamp (see module docstring)."""
        h, w = self.hop_frames, self.window_frames
        total = max(self.num_frames(n_samples), w)
        centre = torch.arange(self.num_timestamps(n_samples)) * h
        last = (total - w) // h * h
        return (torch.div(centre - w // 2, h, rounding_mode="floor") * h).clamp(0, last)

    def window_histograms(self, x: Tensor, starts: Tensor) -> Tensor:
        """Raw counts ``(B, J, 4 D)`` of windows of ``window_frames`` starting at frames
        ``starts`` (multiples of ``hop_frames``) of ``x (B, n_mels, T)``, by cumulative sums;
        for ``2level`` followed by each view's mean middle-layer output over the window's
        vectors, per second of window (as the counts: divided by the window's seconds later)."""
        c, h, w = self.config, self.hop_frames, self.window_frames
        parts, means = [], []
        for view in VIEWS:
            span = c.spans[view]
            window = dict(starts=(starts // h).to(x.device), stride=span // h, n_blocks=w // span)
            if self.middle is None:
                counts = self.model.counts(self.model.codes(x, view, h))      # (B, P, D)
            else:
                codes, hidden = self.model.codes(x, view, h, middle=self.middle)
                counts = self.model.counts(codes)
                # mean over the window's vectors, times its seconds (undone with the counts')
                vectors = c.per_position[view] * (w // span) * c.unit_frames / w
                means.append(windowed_counts(hidden, **window) / vectors)
            parts.append(windowed_counts(counts, **window))
        return torch.cat(parts + means, dim=2)

    def timestamp_blocks(self, audio: Tensor) -> Iterator[Tuple[slice, slice, Tensor]]:
        """``(clips, timestamps, embeddings (clips, timestamps, 4 D))`` in blocks covering every
        timestamp of ``audio (n, L)`` (or a :class:`~hear_suite.streaming.ClipSource`), in
        order, on the model's device."""
        n = audio.shape[0]
        w = self.window_frames
        starts = self.window_starts(audio.shape[1])
        n_ts = len(starts)
        # Blocks of TIMESTAMP_BLOCK x max_frames frames: neighbouring blocks overlap by one
        # window (recomputed), so larger blocks waste less; the frontend and the encoders bound
        # their own memory (frames(), BagOfCodes.codes()), the block keeps ~3.5 kB per frame.
        block = TIMESTAMP_BLOCK * self.max_frames
        clips_per_block = max(1, block // (2 * w))
        span_budget = max(w, block // min(n, clips_per_block) - w)
        for c0 in range(0, n, clips_per_block):
            clips = slice(c0, min(n, c0 + clips_per_block))
            j0 = 0
            while j0 < n_ts:
                # timestamps j0..j1-1: their windows span frames lo..hi-1
                limit = int(starts[j0]) + span_budget
                j1 = j0 + max(1, int((starts[j0:] <= limit).sum()))
                lo, hi = int(starts[j0]), int(starts[j1 - 1]) + w
                x = self.frames(audio[clips], lo, hi)
                hist = self.window_histograms(x, starts[j0:j1] - lo)
                emb = self.scaled(hist * (1000.0 / self.timestamp_window_ms))
                emb = self.mel.after_timestamps(emb, audio[clips], j0, j1)
                yield clips, slice(j0, j1), emb
                j0 = j1

    @torch.no_grad()
    def timestamp_embeddings(self, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """``(n, L)`` -> embeddings ``(n, T, timestamp_embedding_size)`` and timestamps ``(n,
        T)`` ms, float32."""
        audio = check_audio(audio)
        n = audio.shape[0]
        n_ts = self.num_timestamps(audio.shape[1])
        out = audio.new_empty((n, n_ts, self.timestamp_embedding_size))
        for clips, stamps, emb in self.timestamp_blocks(audio):
            out[clips, stamps] = emb.to(out.device)
        ts = frame_timestamps(n, n_ts, first_ms=0.0, hop_ms=float(self.timestamp_hop_ms),
                              device=audio.device)
        return out, ts

    @torch.no_grad()
    def stream(self, source, *, scene: bool = True,
               on_timestamps: Optional[TimestampSink] = None) -> Optional[Tensor]:
        """One clip read on demand (:class:`hear_suite.streaming.ClipSource`): its timestamp
        embeddings go to ``on_timestamps`` block by block, in order; returns the scene
        embedding ``(scene_embedding_size,)`` (or None without ``scene``). The timestamps and
        the scene are two passes over the clip (their windows differ; the floor's scene of
        ``2level+mel`` a third). Equal to the whole-clip calls."""
        if on_timestamps is not None:
            for _, stamps, emb in self.timestamp_blocks(source):
                on_timestamps(emb[0].cpu(), block_timestamps(
                    stamps.start, stamps.stop, first_ms=0.0, hop_ms=float(self.timestamp_hop_ms)))
        if not scene:
            return None
        total = torch.zeros(self.width, dtype=torch.float64)
        for _, _, hist in self.second_blocks(source):
            total += hist[0].sum(0).double().cpu()
        scene = self.scaled((total / len(self.unit_starts(source.shape[1]))).float())
        return self.mel.after_streamed_scene(scene, source)

    # -----------------------------------------------------------------------------------------
    # reference

    @torch.no_grad()
    def direct_window_histograms(self, x: Tensor, starts: Tensor) -> Tensor:
        """Reference for :meth:`window_histograms`: each window cut out and counted on its own
        grid, one window at a time (cost grows with the window). ``(B, J, 4 D)``."""
        c, w = self.config, self.window_frames
        rows = []
        for s in starts.tolist():
            win = x[:, :, s:s + w]
            rows.append(torch.cat([self.model.counts(self.model.codes(win, v, c.spans[v])).sum(1)
                                   for v in VIEWS], dim=1))
        return torch.stack(rows, dim=1)
