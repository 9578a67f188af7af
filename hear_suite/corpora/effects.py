"""Audio effects for generated corpora: pure numpy, except what calls ``sox`` (reverb, tempo, pitch).

All audio is float32 mono of shape (samples,) in [-1, 1]; levels are in dB (dBFS for absolute
levels: an RMS of 1.0 is 0 dBFS). Functions that draw random numbers take a
``numpy.random.Generator`` and use nothing else, so a seeded generator gives identical output.
"""
from __future__ import annotations

import subprocess
from typing import Optional, Sequence, Tuple

import numpy as np

from hear_suite.corpora.tools import require_tool

NOISE_COLORS = ("white", "pink", "brown")
_EPS = 1e-10


# ------------------------------------------------------------------------------------------ sox

def sox(audio: np.ndarray, sample_rate: int, effects: Sequence[str]) -> np.ndarray:
    """Run sox ``effects`` (e.g. ``["tempo", "-s", "1.2"]``) on ``audio``, through pipes.

    Raw 32-bit float in and out, no dither, repeatable mode: deterministic. The output length is
    whatever the effects make it.
    """
    exe = require_tool("sox")
    fmt = ["-t", "f32", "-r", str(int(sample_rate)), "-c", "1"]
    cmd = [exe, "-D", "-R", "-V1", *fmt, "-", *fmt, "-", *map(str, effects)]
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    proc = subprocess.run(cmd, input=data, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sox {' '.join(map(str, effects))} failed: {proc.stderr.decode(errors='replace')}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def time_stretch(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Change duration without changing pitch (sox ``tempo -s``): ``factor`` 1.25 = 25 % faster,
    output about ``len(audio) / factor`` samples."""
    if abs(factor - 1.0) < 1e-3:
        return np.asarray(audio, dtype=np.float32)
    return sox(audio, sample_rate, ["tempo", "-s", f"{factor:.4f}"])


def fit_duration(audio: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Time-stretch ``audio`` (pitch kept) to at most ``max_seconds`` when it is longer."""
    n_max = int(max_seconds * sample_rate)
    if len(audio) <= n_max:
        return np.asarray(audio, dtype=np.float32)
    out = time_stretch(audio, sample_rate, len(audio) / n_max * 1.01)
    return out[:n_max]


def reverb(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, *,
           max_reverberance: float = 80.0) -> Tuple[np.ndarray, dict]:
    """Room reverberation with random parameters (sox ``reverb``); same length as ``audio``.

    Draws reverberance (%), HF damping (%), room scale (%), pre-delay (ms) and a wet/dry balance;
    returns the audio (tail past the end cut) and the parameters drawn.
    """
    params = {
        "reverberance": float(rng.uniform(10.0, max_reverberance)),
        "hf_damping": float(rng.uniform(10.0, 90.0)),
        "room_scale": float(rng.uniform(20.0, 100.0)),
        "pre_delay_ms": float(rng.uniform(0.0, 25.0)),
        "wet_db": float(rng.uniform(-6.0, 0.0)),
    }
    n = len(audio)
    pad = np.concatenate([np.asarray(audio, np.float32), np.zeros(sample_rate // 2, np.float32)])
    wet = sox(pad, sample_rate, ["reverb", "-w", f"{params['reverberance']:.1f}",
                                 f"{params['hf_damping']:.1f}", f"{params['room_scale']:.1f}",
                                 "100", f"{params['pre_delay_ms']:.1f}", "0"])[:n]
    wet = np.pad(wet, (0, n - len(wet)))
    out = audio + db_to_amp(params["wet_db"]) * wet
    return out.astype(np.float32), params


# ---------------------------------------------------------------------------------- levels

def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms_db(audio: np.ndarray) -> float:
    """RMS level of the whole signal in dBFS."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(audio, dtype=np.float64))) + _EPS))


def frame_rms_db(audio: np.ndarray, frame: int) -> np.ndarray:
    """RMS in dBFS of consecutive non-overlapping frames of ``frame`` samples (last one padded)."""
    n = -(-len(audio) // frame)
    x = np.pad(np.asarray(audio, np.float64), (0, n * frame - len(audio))).reshape(n, frame)
    return 20 * np.log10(np.sqrt(np.mean(x * x, axis=1)) + _EPS)


def active_rms_db(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -30.0) -> float:
    """RMS in dBFS over the 10 ms frames within ``threshold_db`` of the loudest frame (speech,
    not the silence around it); the level SNRs and loudness targets refer to."""
    frames = frame_rms_db(audio, max(1, sample_rate // 100))
    active = frames[frames >= frames.max() + threshold_db]
    return float(10 * np.log10(np.mean(10 ** (active / 10)) + _EPS))


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    """Scale ``audio`` by ``db`` decibels."""
    return (np.asarray(audio, np.float32) * db_to_amp(db)).astype(np.float32)


def set_level(audio: np.ndarray, sample_rate: int, target_db: float) -> np.ndarray:
    """Scale so that :func:`active_rms_db` equals ``target_db`` dBFS."""
    return gain(audio, target_db - active_rms_db(audio, sample_rate))


def limit_peak(audio: np.ndarray, peak: float = 0.98) -> np.ndarray:
    """Scale the whole clip down (never up) so that ``max |audio| <= peak``; no clipping."""
    m = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (peak / m)).astype(np.float32) if m > peak else np.asarray(audio, np.float32)


# ------------------------------------------------------------------------------ timing

def trim_silence(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                 pad_ms: float = 20.0) -> np.ndarray:
    """Cut leading and trailing silence: keep from the first to the last 10 ms frame within
    ``threshold_db`` of the loudest frame, plus ``pad_ms`` on each side."""
    frame = max(1, sample_rate // 100)
    frames = frame_rms_db(audio, frame)
    loud = np.flatnonzero(frames >= frames.max() + threshold_db)
    if len(loud) == 0:
        return np.asarray(audio, np.float32)
    pad = int(pad_ms * sample_rate / 1000)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return np.asarray(audio[start:end], np.float32)


def place_in_window(audio: np.ndarray, length: int, rng: np.random.Generator, *,
                    jitter: float = 1.0) -> Tuple[np.ndarray, int]:
    """Put ``audio`` at a random offset in a zero window of ``length`` samples.

    The offset is drawn uniformly over the free room, shrunk around the centre by ``jitter``
    (1.0 = anywhere it fits, 0.0 = centred). Audio longer than the window is cropped around its
    centre. Returns ``(window, offset)``; ``offset`` is negative when the audio was cropped.
    """
    audio = np.asarray(audio, np.float32)
    room = length - len(audio)
    if room <= 0:
        start = -room // 2
        return audio[start:start + length].copy(), -start
    centre = room / 2
    offset = int(round(centre + rng.uniform(-1.0, 1.0) * jitter * centre))
    offset = min(max(offset, 0), room)
    out = np.zeros(length, np.float32)
    out[offset:offset + len(audio)] = audio
    return out, offset


# ------------------------------------------------------------------------------- noise

def colored_noise(n: int, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """Gaussian noise of ``n`` samples with power spectrum 1/f^0 (white), 1/f (pink) or 1/f^2
    (brown), shaped in the frequency domain; zero mean, unit RMS."""
    if color not in NOISE_COLORS:
        raise ValueError(f"color must be one of {NOISE_COLORS}, got {color!r}")
    white = rng.standard_normal(n)
    if color != "white":
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        exponent = {"pink": 0.5, "brown": 1.0}[color]  # amplitude ~ f^-exponent
        spec = spec / f ** exponent
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    white = white - white.mean()
    return (white / (np.sqrt(np.mean(white ** 2)) + _EPS)).astype(np.float32)


def hum(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with a few decaying harmonics at random phases; unit RMS."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    for k in range(1, 6):
        x += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    return (x / (np.sqrt(np.mean(x ** 2)) + _EPS)).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, *,
              color: str = "white", sample_rate: int = 16000,
              hum_db: Optional[float] = None) -> np.ndarray:
    """Add :func:`colored_noise` at ``snr_db`` below the speech level (:func:`active_rms_db`).

    ``hum_db``: also add :func:`hum` this many dB below the speech level (None: no hum).
    """
    level = active_rms_db(audio, sample_rate)
    noise = colored_noise(len(audio), rng, color) * db_to_amp(level - snr_db)
    if hum_db is not None:
        noise = noise + hum(len(audio), sample_rate, rng) * db_to_amp(level - hum_db)
    return (audio + noise).astype(np.float32)


def fade(audio: np.ndarray, sample_rate: int, ms: float = 5.0) -> np.ndarray:
    """Raised-cosine fade in and out over ``ms`` milliseconds (avoids clicks at cut edges)."""
    n = min(len(audio) // 2, int(ms * sample_rate / 1000))
    if n == 0:
        return np.asarray(audio, np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    out = np.array(audio, np.float32)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out

