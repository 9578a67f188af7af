"""The AST as a HEAR embedding model: log-mel frontend + encoder over fixed windows.

Framing (one pure rule, the same in training and embedding), by frontend:

- ``log_mel`` (hear_suite's own models): the audio gets ``pad_front = n_fft / 2 + (patch_time -
  1) * hop / 2`` zeros in front, so patch column ``c`` is centred on sample ``c * stride_time *
  hop`` of the original audio (0, 320, 640, ... ms for the seed 003 layout). A clip of ``L``
  samples has ``L // (stride_time * hop) + 1`` columns: every column whose centre lies within
  the audio.
- ``kaldi_fbank`` (the published ASTs): the original's frames, from sample 0 with no padding,
  and the original's padding: fbank frames past the clip's last whole frame are zeros before
  normalisation (its ``ZeroPad2d``). A clip has one column per patch column made of whole
  frames only (at least one); column ``c`` is centred on frame ``c * stride_time + (patch_time -
  1) / 2``, i.e. ``100 c + 87.5`` ms for stride 10. A clip of at most ``window_frames`` frames
  is one window, exactly the input the original code and ``transformers`` give the model.

Any length (design choice, see the README): the encoder always sees windows of the config's
``window_frames`` (the training length, ``window_cols`` columns), the columns of a clip split
into consecutive windows; the last window is zero-padded and its padded columns dropped. So a
0.1 s clip is one padded window and a 20-minute clip 375 windows, encoded ``max_windows`` at a
time (memory is bounded by ``max_windows``, not by the length). The model itself also runs on any
grid (``AST.forward_features``); windowing keeps the grid the one it was trained on.

- timestamp embeddings: per column, the output patch tokens of that column averaged over the
  frequency bands: ``(n, columns, dim)``; timestamps at the column centres. With
  ``timestamp_hop_ms`` h (a divisor of the column hop, log-mel models only) the encoder also runs
  on the clip advanced by h, 2 h, ... samples' worth: pass k's column c is centred on
  ``c * column hop + k * h``, and the passes interleaved give a timestamp every h ms. Pass k is
  the model's columns of ``audio[:, k * h:]`` that still see the skipped samples as context (the
  same values from its second window on, or where those samples are silent). Scenes come from
  pass 0 only.
- scene embedding (``scene_embedding``): ``"cls"`` (default) the output of the CLS token (mean of
  CLS and distillation token when there is one) averaged over the windows, weighted by their
  real columns; ``"patch_mean"`` the mean of all timestamp embeddings instead.
"""
from __future__ import annotations

import math
from itertools import zip_longest
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from hear_suite.ast import pos_embed as pe
from hear_suite.ast.model import AST, ASTConfig, Frontend, normalize
from hear_suite.audio import check_audio, chunk_slices, frame_timestamps, padded_chunks
from hear_suite.hear_api import check_levels
from hear_suite.logmel.embedder import FloorPart
from hear_suite.streaming import TimestampSink, block_timestamps

SCENE_EMBEDDINGS = ("cls", "patch_mean")
# ``2level+mel``'s default: four passes, a timestamp every quarter column (80 ms for the shipped
# models). Measured on gen_sound_events (onset F within 200 ms; the floor's 10 ms frames: 0.336):
# 0.256 with one pass (320 ms), 0.824 with four, 0.870 with eight (40 ms), for 4x / 8x the cost
# of timestamp embeddings; results/real_suite.md.
MEL_VARIANT_PASSES = 4


class ASTEmbedder(nn.Module):
    """HEAR model: ``sample_rate``, ``timestamp_embedding_size`` = ``scene_embedding_size`` =
    ``dim``. Options: ``scene_embedding`` (``cls`` | ``patch_mean``), ``embedding`` (``final`` |
    ``2level`` | ``2level+mel``, :data:`hear_suite.hear_api.EMBEDDINGS`) with ``middle_depth``
    (block of the middle level; default three quarters of the depth: 3 of the shipped models'
    4, measured, see results/real_suite.md; 9 of ViT-Base's 12, not measured),
    ``max_windows`` (windows encoded at once: bounds memory, not results), ``timestamp_hop_ms``
    (default: the column hop, 320 ms for the shipped models, and a quarter of it for
    ``2level+mel``, :data:`MEL_VARIANT_PASSES`; a divisor such as 160, 80 or 40 costs one
    encoder pass per step of the column hop, for timestamp embeddings only).

    Sizes: ``final`` dim per timestamp and per scene, ``2level`` 2 dim, ``2level+mel`` 2 dim +
    128 per timestamp and 2 dim + 256 per scene (the shipped models: 256 / 512 / 640 and 768)."""

    def __init__(self, encoder: AST, *, scene_embedding: str = "cls", embedding: str = "final",
                 middle_depth: Optional[int] = None, max_windows: int = 16,
                 timestamp_hop_ms: Optional[float] = None) -> None:
        super().__init__()
        if scene_embedding not in SCENE_EMBEDDINGS:
            raise ValueError(f"scene_embedding must be one of {SCENE_EMBEDDINGS}, "
                             f"got {scene_embedding!r}")
        if not isinstance(max_windows, int) or isinstance(max_windows, bool) or max_windows < 1:
            raise ValueError(f"max_windows must be a positive int, got {max_windows!r}")
        c: ASTConfig = encoder.config
        if middle_depth is None:
            middle_depth = min(c.depth - 1, max(1, round(0.75 * c.depth)))
        middle = check_levels(embedding, middle_depth, deepest=c.depth - 1, what="block")
        self.config = c
        self.embedding = embedding
        self.depths = (c.depth,) if middle is None else (c.depth, middle)
        self.frontend = Frontend(c)
        self.encoder = encoder.eval()
        self.scene_embedding = scene_embedding
        self.max_windows = max_windows
        self.sample_rate = c.sample_rate
        self.kaldi = c.frontend == "kaldi_fbank"
        frame_length = self.frontend.frame_length
        self.pad_front = 0 if self.kaldi else (c.n_fft // 2
                                               + round((c.patch_time - 1) * c.hop_length / 2))
        self.col_hop = c.stride_time * c.hop_length                     # samples per column
        # centre of column 0 in the clip's samples: 0 for log_mel, 1400 (87.5 ms) for the AST
        self.first_centre = ((c.patch_time - 1) * c.hop_length + frame_length) / 2 - self.pad_front
        self.window_samples = (c.window_frames - 1) * c.hop_length + frame_length
        self.window_step = c.window_cols * self.col_hop
        self.shifts = self._shifts(timestamp_hop_ms, embedding)  # encoder passes per timestamp
        self.stamp_hop = self.col_hop // self.shifts      # samples between timestamps
        # the value of a zero fbank frame after normalisation (kaldi_fbank's padding)
        self.pad_value = float(normalize(torch.zeros(()), c))
        # the floor's log-mel around each timestamp, averaged over the timestamp hop
        self.mel = FloorPart(first_ms=self.first_ms, hop_ms=self.hop_ms,
                             enabled=embedding == "2level+mel")
        self.width = c.dim * len(self.depths)       # the encoder's part of an embedding
        self.timestamp_embedding_size = self.width + self.mel.timestamp_size
        self.scene_embedding_size = self.width + self.mel.scene_size

    def _shifts(self, hop_ms: Optional[float], embedding: str) -> int:
        if hop_ms is None:
            return MEL_VARIANT_PASSES if embedding == "2level+mel" and not self.kaldi else 1
        col_ms = 1000.0 * self.col_hop / self.sample_rate
        if self.kaldi:
            raise ValueError("timestamp_hop_ms is an option of hear_suite's log-mel ASTs; a "
                             f"published AST has a timestamp every {col_ms:g} ms")
        hop = (hop_ms * self.sample_rate / 1000.0
               if isinstance(hop_ms, (int, float)) and not isinstance(hop_ms, bool) else 0.0)
        if not (hop > 0 and hop == int(hop) and self.col_hop % int(hop) == 0):
            raise ValueError(f"timestamp_hop_ms must divide the column hop of {col_ms:g} ms into "
                             f"whole samples (e.g. {col_ms:g}, {col_ms / 2:g}, {col_ms / 4:g}), "
                             f"got {hop_ms!r}")
        return self.col_hop // int(hop)

    @property
    def device(self) -> torch.device:
        return self.encoder.cls_token.device

    def num_columns(self, n_samples: int) -> int:
        if self.kaldi:
            c = self.config
            return max(1, (self.frontend.num_frames(n_samples) - c.patch_time) // c.stride_time + 1)
        return n_samples // self.col_hop + 1

    def num_windows(self, n_samples: int) -> int:
        return math.ceil(self.num_columns(n_samples) / self.config.window_cols)

    def window_audio(self, audio: Tensor, start: int, stop: int, shift: int = 0) -> Tensor:
        """The samples windows ``start..stop-1`` see (zeros outside the clip) of the clip
        advanced by ``shift`` samples: ``(n, L)`` -> ``(n, stop - start, window_samples)`` on the
        model's device."""
        lo = start * self.window_step
        hi = (stop - 1) * self.window_step + self.window_samples
        seg = padded_chunks(audio, chunk=1, pad_front=self.pad_front - shift, start=lo,
                            stop=hi)[..., 0]
        return seg.to(self.device).unfold(-1, self.window_samples, self.window_step)

    def window_features(self, audio: Tensor, start: int, stop: int, shift: int = 0) -> Tensor:
        """Normalised log-mel of windows ``start..stop-1`` (of the clip advanced by ``shift``
        samples): ``(n, L)`` -> ``(n, stop - start, n_mels, window_frames)`` on the model's
        device."""
        seg = self.window_audio(audio, start, stop, shift)
        mel = self.frontend(seg.reshape(-1, self.window_samples))
        mel = mel.reshape(*seg.shape[:2], *mel.shape[1:])
        if self.kaldi:  # frames past the clip's whole frames: zero fbank, as the original pads
            frame = (torch.arange(start, stop, device=mel.device)[:, None, None]
                     * (self.window_step // self.config.hop_length)
                     + torch.arange(mel.shape[-1], device=mel.device))
            mel = mel.masked_fill(frame >= self.frontend.num_frames(audio.shape[-1]),
                                  self.pad_value)
        return mel

    def embed_windows(self, mel: Tensor) -> Tuple[Tensor, Tensor]:
        """``(k, n_mels, frames)`` -> scene tokens ``(k, width)`` and column embeddings
        ``(k, columns, width)``, ``width = dim * levels`` (final level first)."""
        c = self.config
        if len(self.depths) == 1:
            levels = [self.encoder.forward_features(mel)]
        else:
            levels = self.encoder.forward_levels(mel, self.depths)
        tokens = torch.cat(levels, dim=-1)
        grid = c.grid(mel.shape[1], mel.shape[2])
        cols = pe.tokens_to_grid(tokens[:, c.num_prefix:], grid, c.order).mean(dim=2)
        return tokens[:, :c.num_prefix].mean(dim=1), cols.transpose(1, 2)

    def column_blocks(self, audio: Tensor, shift: int = 0
                      ) -> Iterator[Tuple[slice, slice, Tensor, Tensor]]:
        """``(clips, columns, column embeddings (clips, columns, dim), CLS share (clips, dim))``
        in blocks of ``max_windows`` windows covering ``audio (n, L)`` (or a
        :class:`~hear_suite.streaming.ClipSource`) advanced by ``shift`` samples, in order, on
        the model's device. The CLS shares of a clip's blocks sum to its ``cls`` scene embedding
        (window CLS outputs weighted by their real columns)."""
        n, length = audio.shape
        if shift > length:        # no column centre left in the clip
            return
        wc = self.config.window_cols
        n_cols, n_win = self.num_columns(length - shift), self.num_windows(length - shift)
        for clips, wins in chunk_slices(n, n_win, self.max_windows):
            mel = self.window_features(audio[clips], wins.start, wins.stop, shift)
            bn, bw = mel.shape[:2]
            cls, emb = self.embed_windows(mel.flatten(0, 1))
            cls, emb = cls.reshape(bn, bw, -1), emb.reshape(bn, bw * wc, -1)
            c0 = wins.start * wc
            c1 = min(n_cols, wins.stop * wc)
            real = (n_cols - wc * torch.arange(wins.start, wins.stop)).clamp(max=wc)
            weights = (real.to(cls) / n_cols)[None, :, None]
            yield clips, slice(c0, c1), emb[:, :c1 - c0], (cls * weights).sum(dim=1)

    def embed(self, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """``(n, L)`` -> scene ``(n, width)`` and column embeddings ``(n, columns, width)`` of
        the encoder's levels (no floor part), on the audio's device."""
        audio = check_audio(audio)
        n, length = audio.shape
        cols = audio.new_empty((n, self.num_columns(length), self.width))
        scene = audio.new_zeros((n, self.width))
        for clips, columns, emb, cls in self.column_blocks(audio):
            cols[clips, columns] = emb.to(cols.device)
            scene[clips] += cls.to(scene.device)
        if self.scene_embedding == "patch_mean":
            scene = cols.mean(dim=1)
        return scene, cols

    def num_timestamps(self, n_samples: int) -> int:
        return (n_samples // self.stamp_hop + 1) if self.shifts > 1 else self.num_columns(n_samples)

    def timestamp_blocks(self, audio: Tensor) -> Iterator[Tuple[slice, Tensor, Tensor]]:
        """One clip (``audio (1, L)`` or a ClipSource) in blocks of ``max_windows`` windows:
        ``(timestamps, their embeddings (1, T_block, width), CLS share (1, width))``, the
        passes of ``timestamp_hop_ms`` interleaved (pass k's column c is timestamp c * shifts +
        k; the valid timestamps ``t * stamp_hop <= L`` are contiguous, so each block is too)."""
        s = self.shifts
        passes = [self.column_blocks(audio, shift=k * self.stamp_hop) for k in range(s)]
        for blocks in zip_longest(*passes):
            _, columns, emb, cls = blocks[0]
            t0 = columns.start * s
            t1 = max((b[1].stop - 1) * s + k + 1 for k, b in enumerate(blocks) if b is not None)
            out = emb.new_empty((emb.shape[0], t1 - t0, emb.shape[2]))
            for k, b in enumerate(blocks):
                if b is not None:
                    out[:, b[1].start * s + k - t0::s] = b[2]
            yield slice(t0, t1), out, cls

    @property
    def hop_ms(self) -> float:
        """Milliseconds between timestamps."""
        return 1000.0 * self.stamp_hop / self.sample_rate

    @property
    def first_ms(self) -> float:
        return 1000.0 * self.first_centre / self.sample_rate


    @torch.no_grad()
    def stream(self, source, *, scene: bool = True,
               on_timestamps: Optional[TimestampSink] = None) -> Optional[Tensor]:
        """One clip read on demand (:class:`hear_suite.streaming.ClipSource`): its timestamp
        embeddings go to ``on_timestamps`` block by block, in order; returns the scene
        embedding ``(scene_embedding_size,)`` (or None without ``scene``). Equal to the
        whole-clip calls (the floor's scene of ``2level+mel`` is a second pass over the source)."""
        total = torch.zeros(self.width, dtype=torch.float64)
        s = self.shifts
        for stamps, emb, cls in self.timestamp_blocks(source):
            if on_timestamps is not None:
                out = self.mel.after_timestamps(emb, source, stamps.start, stamps.stop)
                on_timestamps(out[0].cpu(), block_timestamps(
                    stamps.start, stamps.stop, first_ms=self.first_ms, hop_ms=self.hop_ms))
            # cls: the windows' weighted share; patch_mean: the (pass 0) columns' sum
            total += (emb[0, ::s].cpu().sum(0) if self.scene_embedding == "patch_mean"
                      else cls[0].cpu()).double()
        if not scene:
            return None
        if self.scene_embedding == "patch_mean":
            total /= self.num_columns(source.shape[1])
        return self.mel.after_streamed_scene(total.float(), source)

    @torch.no_grad()
    def timestamp_embeddings(self, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """``(n, L)`` -> embeddings ``(n, T, timestamp_embedding_size)`` and timestamps ``(n,
        T)`` ms at the column centres, ``T = L // (stride_time * hop) + 1`` (``L // h + 1`` for
        ``timestamp_hop_ms`` h)."""
        audio = check_audio(audio)
        n, length = audio.shape
        s = self.shifts
        cols = audio.new_empty((n, self.num_timestamps(length), self.width))
        for k in range(s):  # pass k's column c is timestamp c * s + k
            for clips, columns, emb, _ in self.column_blocks(audio, shift=k * self.stamp_hop):
                cols[clips, columns.start * s + k::s][:, :emb.shape[1]] = emb.to(cols.device)
        cols = self.mel.after_timestamps(cols, audio, 0, cols.shape[1])
        ts = frame_timestamps(cols.shape[0], cols.shape[1], first_ms=self.first_ms,
                              hop_ms=self.hop_ms, device=cols.device)
        return cols, ts

    @torch.no_grad()
    def scene_embeddings(self, audio: Tensor) -> Tensor:
        """``(n, L)`` -> ``(n, scene_embedding_size)``."""
        return self.mel.after_scene(self.embed(audio)[0], audio)
