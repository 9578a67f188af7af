"""The no-learning floor: log-mel frames as timestamp embeddings, their mean and standard
deviation over time as the scene embedding. No parameters, no weights: the score any learned
embedding should beat through the same downstream probes.

Frames: power mel spectrogram of a 25 ms Hann window (400 samples, zero-padded to ``n_fft``
512), 128 Slaney mel bands over 0-8 kHz, ``log(mel + 1e-6)`` (the nnAudio frontend of
:mod:`hear_suite.frontends`, run on the model's device).

Padding: each clip gets half a window (200 zeros) on both sides, so frame ``k`` is centred on
sample ``k * hop``, at ``k * 10`` ms, and a clip of ``L`` samples has ``L // hop + 1`` frames:
one even for a clip shorter than a window, and every timestamp lies inside the clip. The padded
audio is never materialised: frames are computed from the original tensor in blocks of at most
``max_frames`` frames (all clips together), so memory stays flat on long clips.

Scene: ``[mean | std]`` over the clip's frames (population std, ``ddof = 0``): exactly the
statistics of its timestamp embeddings. Per-block statistics in float64 are merged with the
pairwise update of Chan et al. (count, mean, sum of squared deviations), which avoids the
cancellation of ``E[x^2] - E[x]^2`` and makes the block size irrelevant beyond rounding. A HEAR
batch holds clips of one length, so every clip has the same frames and none is batch padding.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from hear_suite import frontends
from hear_suite.audio import check_audio, chunk_slices, frame_timestamps, padded_chunks
from hear_suite.hear_api import MEL_SCALE
from hear_suite.pooling import Moments
from hear_suite.streaming import TimestampSink, block_timestamps

SAMPLE_RATE = 16000
N_MELS = 128
N_FFT = 512
WIN_LENGTH = 400   # 25 ms
HOP_LENGTH = 160   # 10 ms
EPS = 1e-6         # log offset: silence gives log(1e-6) = -13.8, not -inf


class LogMelEmbedder(nn.Module):
    """HEAR model: ``sample_rate`` 16000, ``timestamp_embedding_size`` 128 (mel bands),
    ``scene_embedding_size`` 256 (mean, then std). Option: ``max_frames`` (frames, all clips
    together, computed at once: bounds memory, not results)."""

    def __init__(self, *, max_frames: int = 4000) -> None:
        super().__init__()
        if not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive int, got {max_frames!r}")
        self.frontend = frontends.log_mel(sample_rate=SAMPLE_RATE, n_mels=N_MELS, n_fft=N_FFT,
                                          win_length=WIN_LENGTH, hop_length=HOP_LENGTH, eps=EPS)
        self.max_frames = max_frames
        self.sample_rate = SAMPLE_RATE
        self.timestamp_embedding_size = N_MELS
        self.scene_embedding_size = 2 * N_MELS

    @property
    def device(self) -> torch.device:
        return self.frontend.mel.mel_basis.device

    @staticmethod
    def num_frames(n_samples: int) -> int:
        """Frames of a clip of ``n_samples``: centres ``0, hop, ...`` up to the last sample."""
        return n_samples // HOP_LENGTH + 1

    def blocks(self, audio: Tensor) -> Iterator[Tuple[slice, slice, Tensor]]:
        """``(clips, frames, log_mel)`` covering every frame of ``audio (n, L)`` (or a
        :class:`~hear_suite.streaming.ClipSource`) in blocks of at most ``max_frames`` frames;
        ``log_mel (clips, frames, n_mels)`` on the model's device."""
        n, length = audio.shape
        for clips, frames in chunk_slices(n, self.num_frames(length), self.max_frames):
            yield clips, frames, self.frames(audio[clips], frames.start, frames.stop)

    def frames(self, audio: Tensor, start: int, stop: int) -> Tensor:
        """Log-mel frames ``start..stop-1`` (``0 <= start < stop <= num_frames``) of ``audio (n,
        L)`` (or a :class:`~hear_suite.streaming.ClipSource`): ``(n, stop - start, 128)`` on the
        model's device, equal to those of :meth:`blocks`."""
        width = (stop - start - 1) * HOP_LENGTH + WIN_LENGTH
        piece = padded_chunks(audio, chunk=width, pad_front=WIN_LENGTH // 2 - start * HOP_LENGTH,
                              start=0, stop=1)[:, 0]
        return self.frontend(piece.to(self.device)).transpose(1, 2)

    @torch.no_grad()
    def frames_at(self, audio: Tensor, *, first_ms: float, hop_ms: float, start: int,
                  stop: int) -> Tensor:
        """Another model's timestamps seen by the floor: for timestamps ``start..stop-1`` at
        ``first_ms + j * hop_ms``, the mean of the ``max(1, round(hop_ms / 10))`` log-mel frames
        centred on each (for a 10 ms hop, the one frame nearest to it; frames beyond the clip's
        ends are replaced by its first or last frame). ``audio (n, L)`` (or a
        :class:`~hear_suite.streaming.ClipSource`) -> ``(n, stop - start, 128)`` on the model's
        device, computed ``max_frames`` frames at a time."""
        frame_ms = 1000 * HOP_LENGTH / SAMPLE_RATE
        span = max(1, round(hop_ms / frame_ms))
        last = self.num_frames(audio.shape[1]) - 1
        out = []
        per_block = max(1, self.max_frames // (span * audio.shape[0]))
        for j0 in range(start, stop, per_block):
            j = torch.arange(j0, min(stop, j0 + per_block), dtype=torch.float64)
            # the span frames centred on the timestamp (the nearest one when span is 1)
            first = torch.floor((first_ms + j * hop_ms) / frame_ms - (span - 1) / 2 + 0.5).long()
            idx = (first[:, None] + torch.arange(span)).clamp(0, last)      # (J, span)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            x = self.frames(audio, lo, hi)                                   # (n, hi - lo, 128)
            out.append(x[:, (idx - lo).reshape(-1).to(x.device)]
                       .reshape(x.shape[0], *idx.shape, N_MELS).mean(dim=2))
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def timestamp_embeddings(self, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """``(n, L)`` -> log-mel frames ``(n, T, 128)`` and timestamps ``(n, T)`` in ms
        (``0, 10, 20, ...``), ``T = L // 160 + 1``; on the audio's device."""
        audio = check_audio(audio)
        n, length = audio.shape
        n_frames = self.num_frames(length)
        out = audio.new_empty((n, n_frames, N_MELS))
        for clips, frames, x in self.blocks(audio):
            out[clips, frames] = x.to(out.device)
        ts = frame_timestamps(n, n_frames, first_ms=0.0, hop_ms=1000 * HOP_LENGTH / SAMPLE_RATE,
                              device=audio.device)
        return out, ts

    @torch.no_grad()
    def scene_embeddings(self, audio: Tensor) -> Tensor:
        """``(n, L)`` -> ``(n, 256)``: per mel band, the mean (first 128) and the population
        standard deviation (last 128) of the clip's log-mel frames; on the audio's device."""
        audio = check_audio(audio)
        stats = Moments(audio.shape[0], N_MELS, self.device)
        for clips, _, x in self.blocks(audio):
            stats.add(clips, x)
        return torch.cat(stats.mean_std(), dim=1).to(audio.device)

    @torch.no_grad()
    def stream(self, source, *, scene: bool = True,
               on_timestamps: Optional[TimestampSink] = None) -> Optional[Tensor]:
        """One clip read on demand (:class:`hear_suite.streaming.ClipSource`): its timestamp
        embeddings go to ``on_timestamps`` block by block, in order; returns the scene
        embedding ``(256,)`` (or None without ``scene``). Equal to the whole-clip calls."""
        stats = Moments(1, N_MELS, self.device)
        hop_ms = 1000 * HOP_LENGTH / SAMPLE_RATE
        for clips, frames, x in self.blocks(source):
            if on_timestamps is not None:
                on_timestamps(x[0].cpu(), block_timestamps(frames.start, frames.stop,
                                                           first_ms=0.0, hop_ms=hop_ms))
            if scene:
                stats.add(clips, x)
        return torch.cat(stats.mean_std(), dim=1)[0].cpu() if scene else None


class FloorPart(nn.Module):
    """The floor as the last part of another model's ``2level+mel`` embeddings: its log-mel at
    that model's timestamps (``first_ms + j * hop_ms``, :meth:`LogMelEmbedder.frames_at`) after
    the timestamp embeddings, its scene embedding after the scene embedding, both times
    :data:`hear_suite.hear_api.MEL_SCALE`. With ``enabled=False`` it adds nothing (the other
    variants), so the models call it unconditionally."""

    def __init__(self, *, first_ms: float, hop_ms: float, enabled: bool = True) -> None:
        super().__init__()
        self.floor = LogMelEmbedder() if enabled else None
        self.first_ms, self.hop_ms = first_ms, hop_ms
        self.timestamp_size = N_MELS if enabled else 0
        self.scene_size = 2 * N_MELS if enabled else 0

    def after_timestamps(self, emb: Tensor, audio: Tensor, start: int, stop: int) -> Tensor:
        """``emb (n, stop - start, D)`` of timestamps ``start..stop-1`` of ``audio (n, L)`` (or
        a :class:`~hear_suite.streaming.ClipSource`) -> ``(n, stop - start, D + 128)``."""
        if self.floor is None:
            return emb
        mel = self.floor.frames_at(audio, first_ms=self.first_ms, hop_ms=self.hop_ms,
                                   start=start, stop=stop)
        return torch.cat([emb, MEL_SCALE * mel.to(emb)], dim=-1)

    def after_scene(self, scene: Tensor, audio: Tensor) -> Tensor:
        """``scene (n, D)`` of ``audio (n, L)`` -> ``(n, D + 256)``."""
        if self.floor is None:
            return scene
        return torch.cat([scene, MEL_SCALE * self.floor.scene_embeddings(audio).to(scene)], dim=1)

    def after_streamed_scene(self, scene: Tensor, source) -> Tensor:
        """``scene (D,)`` of one streamed clip -> ``(D + 256,)`` (a pass over ``source``)."""
        if self.floor is None:
            return scene
        return torch.cat([scene, MEL_SCALE * self.floor.stream(source, scene=True).to(scene)])
