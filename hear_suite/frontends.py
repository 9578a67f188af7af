"""Spectral frontends as nnAudio layers: ``nn.Module``s built from a checkpoint's config, so they
move to the model's device with ``.to(device)`` and run there (GPU when present)."""
from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F
from torch import nn

from hear_suite import onednn


def _quiet(build):
    # nnAudio prints kernel-creation messages even with verbose=False in some versions.
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


def stft_squares(audio: torch.Tensor, stft: nn.Module, *, n_fft: int, bins: int) -> torch.Tensor:
    """Squared STFT of nnAudio's ``stft`` layer (``center=False``) by FFT, frames-major.

    ``(n, samples)`` -> ``(n, frames, 2 * bins)``: for each frequency bin the squared real and
    imaginary parts side by side (summing each pair gives the power spectrum). Frame ``k`` is the
    samples ``k * hop ..`` times the layer's window (the length of its kernels), zero-padded to
    ``n_fft``: the layer's ``conv1d`` spectrum up to a phase, so the same power, at a fraction of
    the cost on a CPU (KW-MLP: 241 x 2 kernels of 480 taps per frame against one 480-point FFT).
    """
    window = stft.wcos[0, 0]  # the frequency-0 cosine kernel is the window itself
    taps = window.shape[0]
    n_frames = 1 + (audio.shape[-1] - taps) // stft.stride
    # frames of n_fft samples times the window zero-padded to n_fft: the FFT then needs no padded
    # copy of each frame (the audio's end is padded once instead)
    if taps < n_fft:
        audio, window = F.pad(audio, (0, n_fft - taps)), F.pad(window, (0, n_fft - taps))
    frames = audio.unfold(-1, n_fft, stft.stride)[:, :n_frames]        # (n, frames, n_fft)
    spectrum = torch.fft.rfft(frames * window)[..., :bins]
    return torch.view_as_real(spectrum).flatten(2).square_()  # the spectrum is ours to overwrite


class MFCC(nn.Module):
    """nnAudio's MFCC layer, computed token-major with an FFT on the CPU.

    nnAudio computes the STFT as a ``conv1d`` with one ``n_fft``-tap kernel per frequency and
    part (482 kernels of 480 taps for KW-MLP): about 3.7x the cost of an FFT of the same windowed
    frames on a CPU; its DCT is an FFT with a dozen small passes. On the CPU, frames of nnAudio's
    window go through ``torch.fft.rfft`` (:func:`stft_squares`); the squared real and imaginary parts go through nnAudio's mel filters
    (each weight twice), then nnAudio's dB scaling (per-item ``top_db``) and nnAudio's DCT as the
    matrix it applies (read off by applying it to the identity), both products by
    :func:`hear_suite.onednn.linear` on frames-major tensors. The output equals
    ``self.nnaudio(audio)`` within float32 rounding (tested). Elsewhere (CUDA, where the
    convolution is fast), for ``center=True`` and for 3-D input the nnAudio layer runs as it is.

    ``(n, samples)`` -> ``(n, n_mfcc, frames)`` (on the CPU a transposed view of a frames-major
    tensor, which is the layout the KW-MLP encoder reads).
    """

    def __init__(self, nnaudio_mfcc: nn.Module) -> None:
        super().__init__()
        self.nnaudio = nnaudio_mfcc
        mel_basis = nnaudio_mfcc.melspec_layer.mel_basis                  # (n_mels, freq_bins)
        self.register_buffer("mel_basis_interleaved", mel_basis.repeat_interleave(2, dim=1),
                             persistent=False)
        identity = torch.eye(mel_basis.shape[0])[None]                    # n_mels frames of e_j
        dct = nnaudio_mfcc._dct(identity, norm="ortho")[0]               # (coefficient, mel)
        self.register_buffer("dct_matrix", dct[:nnaudio_mfcc.m_mfcc].contiguous(),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        layer, stft = self.nnaudio, self.nnaudio.melspec_layer.stft
        if (audio.device.type != "cpu" or audio.dim() != 2 or stft.center
                or layer.melspec_layer.power != 2):
            return layer(audio)
        squares = stft_squares(audio, stft, n_fft=stft.wcos.shape[-1],
                               bins=self.mel_basis_interleaved.shape[1] // 2)
        mel_power = onednn.linear(squares, self.mel_basis_interleaved)  # |X|^2 through the filters
        mfcc = onednn.linear(layer._power_to_db(mel_power), self.dct_matrix)
        return mfcc.transpose(1, 2)


def mfcc(*, sample_rate: int, n_mfcc: int, n_mels: int, n_fft: int, win_length: int,
         hop_length: int, center: bool = False) -> nn.Module:
    """MFCC: ``(n, samples)`` -> ``(n, n_mfcc, frames)``; Hann window, power mel spectrogram in
    dB (ref 1, amin 1e-10, top_db 80 per item) and orthonormal DCT-II: nnAudio's layer, its STFT
    by FFT on the CPU (:class:`MFCC`)."""
    from nnAudio.features import MFCC as NNAudioMFCC

    return MFCC(_quiet(lambda: NNAudioMFCC(sr=sample_rate, n_mfcc=n_mfcc, n_mels=n_mels,
                                           n_fft=n_fft, win_length=win_length,
                                           hop_length=hop_length, center=center, verbose=False)))


class LogMel(nn.Module):
    """Log mel spectrogram with an nnAudio ``MelSpectrogram`` (``center=False``).

    ``(n, samples)`` -> ``(n, n_mels, frames)``, ``log(mel power + eps)``; frame ``k`` covers
    samples ``k * hop .. k * hop + win_length - 1`` (so it is centred on ``k * hop + win / 2``).
    When ``win_length < n_fft`` nnAudio zero-pads the window to ``n_fft`` taps and convolves with
    all of them; the STFT kernels are cut here to the window's support, which gives the same
    magnitudes (the dropped taps are multiplied by zero) at ``win / n_fft`` of the cost.

    On the CPU the power spectrum comes from an FFT (:func:`stft_squares`) and goes through
    nnAudio's mel filters as a frames-major product (:func:`hear_suite.onednn.linear`); the output
    is then a transposed view and equals nnAudio's convolution path within float32 rounding
    (tested). On CUDA and for 3-D input the nnAudio layer runs as it is.
    """

    def __init__(self, *, sample_rate: int, n_mels: int, n_fft: int, win_length: int,
                 hop_length: int, fmin: float, fmax: float, eps: float) -> None:
        super().__init__()
        from nnAudio.features import MelSpectrogram

        self.mel = _quiet(lambda: MelSpectrogram(
            sr=sample_rate, n_fft=n_fft, win_length=win_length, n_mels=n_mels,
            hop_length=hop_length, window="hann", center=False, fmin=fmin, fmax=fmax,
            trainable_mel=False, trainable_STFT=False, verbose=False))
        stft = self.mel.stft
        support = (stft.wcos.abs().sum(dim=(0, 1)) > 0).nonzero().flatten()
        lo, hi = int(support.min()), int(support.max()) + 1
        # the Hann window's two zero end points are outside the support: pad back to win_length
        lo = max(0, min(lo, (n_fft - win_length) // 2))
        hi = lo + win_length
        stft.wsin = stft.wsin[..., lo:hi].contiguous()
        stft.wcos = stft.wcos[..., lo:hi].contiguous()
        # |X|^2 through the filters from the interleaved squares: each filter weight twice
        self.register_buffer("mel_basis_interleaved",
                             self.mel.mel_basis.repeat_interleave(2, dim=1), persistent=False)
        self.n_fft = n_fft
        self.win_length = win_length
        self.eps = eps

    def forward(self, audio: "torch.Tensor", spectrum_transform=None) -> "torch.Tensor":
        """``spectrum_transform``: applied to the linear power spectrogram ``(n, freq, frames)``
        before the mel filterbank (e.g. SpecAugment in the STFT domain, as seed 003 does)."""
        mel = self.mel
        if audio.device.type != "cpu" or audio.dim() != 2:
            if spectrum_transform is None:
                return torch.log(mel(audio) + self.eps)
            spec = mel.stft(audio, output_format="Magnitude") ** mel.power
            return torch.log(torch.matmul(mel.mel_basis, spectrum_transform(spec)) + self.eps)
        squares = stft_squares(audio, mel.stft, n_fft=self.n_fft, bins=mel.mel_basis.shape[1])
        if spectrum_transform is None and mel.power == 2:
            mel_power = onednn.linear(squares, self.mel_basis_interleaved)
        else:
            power = squares.unflatten(-1, (-1, 2)).sum(-1) ** (mel.power / 2)  # (n, frames, freq)
            if spectrum_transform is not None:
                power = spectrum_transform(power.transpose(1, 2)).transpose(1, 2)
            mel_power = onednn.linear(power, mel.mel_basis)
        return torch.log(mel_power + self.eps).transpose(1, 2)


def log_mel(*, sample_rate: int, n_mels: int, n_fft: int, win_length: int, hop_length: int,
            fmin: float = 0.0, fmax: float | None = None, eps: float = 1e-6) -> nn.Module:
    """nnAudio log mel spectrogram (Hann window): see :class:`LogMel`."""
    return LogMel(sample_rate=sample_rate, n_mels=n_mels, n_fft=n_fft, win_length=win_length,
                  hop_length=hop_length, fmin=fmin, fmax=sample_rate / 2 if fmax is None else fmax,
                  eps=eps)


def kaldi_mel_banks(*, n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
                    ) -> torch.Tensor:
    """Kaldi's triangular mel filters (``mel-computations.cc``): ``(n_mels, n_fft // 2 + 1)``.

    Mel scale ``1127 ln(1 + f / 700)``; the ``n_mels`` filters are triangles of equal width in
    mel between ``fmin`` and ``fmax`` (filter ``m`` rises from edge ``m`` to ``m + 1`` and falls
    to ``m + 2`` of ``n_mels + 2`` equally spaced edges), evaluated at the FFT bins ``0 ..
    n_fft / 2 - 1``; the Nyquist bin gets no weight, as in Kaldi. Built in float64."""
    def mel(f):
        return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)

    edges = torch.linspace(float(mel(fmin)), float(mel(fmax)), n_mels + 2, dtype=torch.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bins = mel(torch.arange(n_fft // 2, dtype=torch.float64) * sample_rate / n_fft)[None]
    rise, fall = (bins - left) / (centre - left), (right - bins) / (right - centre)
    banks = torch.minimum(rise, fall).clamp(min=0)                   # (n_mels, n_fft / 2)
    return F.pad(banks, (0, 1))                                      # + the Nyquist bin


class KaldiFbank(nn.Module):
    """Kaldi's log mel filterbank as the original AST computes it: ``torchaudio.compliance.kaldi
    .fbank(wave, htk_compat=True, use_energy=False, window_type='hanning', dither=0.0,
    frame_shift=10)`` with its defaults otherwise (25 ms frames, ``snip_edges``, per-frame DC
    removal, pre-emphasis 0.97, FFT size rounded up to a power of two, power spectrum, mel
    filters from ``fmin``, ``log(max(x, float32 eps))``), batched and on any device.

    ``(n, samples)`` -> ``(n, n_mels, frames)``, ``frames = 1 + (samples - win_length) //
    hop_length`` (frame ``k`` is samples ``k * hop .. k * hop + win - 1``; none when the audio is
    shorter than one frame). The AST's ``wave - wave.mean()`` before the fbank needs no step of
    its own: each frame's mean is removed anyway, which cancels any constant offset.
    """

    def __init__(self, *, sample_rate: int, n_mels: int, n_fft: int, win_length: int,
                 hop_length: int, fmin: float, fmax: float, floor: float,
                 preemphasis: float = 0.97) -> None:
        super().__init__()
        if n_fft < win_length:
            raise ValueError(f"n_fft {n_fft} is shorter than the {win_length}-sample frame")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.floor, self.preemphasis = floor, preemphasis
        # Kaldi's "hanning" is the symmetric Hann window (zero at both ends)
        self.register_buffer("window", torch.hann_window(win_length, periodic=False,
                                                         dtype=torch.float64),
                             persistent=False)
        self.register_buffer("banks", kaldi_mel_banks(
            n_mels=n_mels, n_fft=n_fft, sample_rate=sample_rate, fmin=fmin, fmax=fmax),
            persistent=False)

    def forward(self, audio: torch.Tensor, spectrum_transform=None) -> torch.Tensor:
        """``spectrum_transform``: applied to the power spectrogram ``(n, freq, frames)`` before
        the mel filters (as :class:`LogMel`)."""
        # float64 up to the log, as the reference implementations: in float32 the quiet bands
        # below ~100 Hz (attenuated by the DC removal and pre-emphasis) come out up to 1e-3 off
        # in log units; the cost is negligible next to any encoder
        if audio.shape[-1] < self.win_length:  # no whole frame
            return audio.new_zeros((*audio.shape[:-1], self.banks.shape[0], 0))
        frames = audio.double().unfold(-1, self.win_length, self.hop_length)  # (n, frames, win)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        # pre-emphasis x[i] - 0.97 x[i - 1], the first sample against itself (Kaldi)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - self.preemphasis * previous) * self.window.double()
        spectrum = torch.fft.rfft(frames, n=self.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()          # (n, frames, freq)
        if spectrum_transform is not None:
            power = spectrum_transform(power.transpose(1, 2)).transpose(1, 2)
        fbank = F.linear(power, self.banks.double())                     # (n, frames, n_mels)
        return fbank.clamp(min=self.floor).log().to(audio.dtype).transpose(1, 2)


def kaldi_fbank(*, sample_rate: int = 16000, n_mels: int = 128, n_fft: int = 512,
                win_length: int = 400, hop_length: int = 160, fmin: float = 20.0,
                fmax: float | None = None,
                floor: float = float(torch.finfo(torch.float32).eps)) -> nn.Module:
    """Kaldi log mel filterbank of the original AST (defaults: its 16 kHz, 128-bin setting):
    see :class:`KaldiFbank`."""
    return KaldiFbank(sample_rate=sample_rate, n_mels=n_mels, n_fft=n_fft,
                      win_length=win_length, hop_length=hop_length, fmin=fmin,
                      fmax=sample_rate / 2 if fmax is None else fmax, floor=floor)
