"""Synthetic environmental sounds and ambiences: numpy only (no Debian package, no data files).

Each sound class is a small parametric synthesiser whose parameters are drawn from the given
random generator, so two draws of a class differ (pitch, duration, repetitions, timbre) while
classes stay distinct by their structure (harmonic vs. noisy, sweeping vs. steady, impulsive vs.
sustained). They stand in for ESC-50 / DCASE-style sources in the generated evaluation tasks.

>>> rng = np.random.default_rng(0)
>>> x = synthesize("siren", rng, 16000)   # float32 (samples,), peak 0.5..0.9
>>> bg = ambience(rng, 16000 * 10, 16000) # 10 s of room tone, RMS about 1

Everything is a pure function of ``(rng state, sample_rate)``: fixed seeds give identical audio.
"""
from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from hear_suite.corpora.effects import colored_noise, db_to_amp, fade, hum, rms_db

Synth = Callable[[np.random.Generator, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _t(duration: float, sr: int) -> np.ndarray:
    return np.arange(int(round(duration * sr))) / sr


def _sine_from_freq(freq: np.ndarray, sr: int, phase: float = 0.0) -> np.ndarray:
    """Sine whose instantaneous frequency (Hz, per sample) is ``freq``."""
    return np.sin(phase + 2 * np.pi * np.cumsum(freq) / sr)


def _ar_envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack then exponential decay to about -60 dB over ``release`` seconds."""
    t = np.arange(n) / sr
    env = np.exp(-6.9 * np.maximum(t - attack, 0) / max(release, 1e-3))
    if attack > 0:
        env *= np.minimum(t / attack, 1.0)
    return env


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to ``[lo, hi]`` Hz (FFT mask), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _normalize(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Peak-normalise to a random level in [0.5, 0.9]; float32."""
    x = fade(np.asarray(x, dtype=np.float64), sr)
    return (x * rng.uniform(0.5, 0.9) / (np.abs(x).max() + 1e-9)).astype(np.float32)


def _place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(x))
    if end > start:
        out[start:end] += x[: end - start]


# ---------------------------------------------------------------------------------------------
# sound classes
# ---------------------------------------------------------------------------------------------

def alarm(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Repeated square-ish beeps at a steady pitch (1-3 kHz)."""
    f0 = rng.uniform(1000, 3000)
    beep, gap = rng.uniform(0.08, 0.2), rng.uniform(0.05, 0.15)
    n_beeps = int(rng.integers(3, 7))
    tb = _t(beep, sr)
    tone = sum(np.sin(2 * np.pi * k * f0 * tb) / k for k in (1, 3, 5))
    tone = fade(tone, sr, 3)
    out = np.zeros(int((beep + gap) * n_beeps * sr))
    for i in range(n_beeps):
        _place(out, tone, int(i * (beep + gap) * sr))
    return out


def bark(rng: np.random.Generator, sr: int) -> np.ndarray:
    """1-3 short harmonic barks: falling pitch (300-700 Hz) with a noisy formant."""
    out = np.zeros(int(1.6 * sr))
    pos = 0
    for _ in range(int(rng.integers(1, 4))):
        dur = rng.uniform(0.12, 0.25)
        n = int(dur * sr)
        f0 = rng.uniform(300, 700) * np.linspace(1.2, 0.8, n)
        harm = sum(_sine_from_freq(k * f0, sr) * np.exp(-0.35 * k) for k in range(1, 9))
        noise = band_noise(rng, n, sr, 500, 3000) * 0.3
        x = (harm + noise) * _ar_envelope(n, sr, 0.01, dur)
        _place(out, x, pos)
        pos += n + int(rng.uniform(0.1, 0.25) * sr)
    return out[: max(pos, 1)]


def bell(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Inharmonic partials (bell ratios) with long exponential decay."""
    f0 = rng.uniform(300, 1200)
    dur = rng.uniform(0.8, 1.8)
    t = _t(dur, sr)
    ratios = np.array([0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 3.01]) * rng.uniform(0.98, 1.02, 7)
    x = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6.28)) * np.exp(-t * (1 + 2 * r) / dur)
            for r in ratios)
    return x * _ar_envelope(len(t), sr, 0.002, dur)


def chirp(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Bird-like: 2-6 fast upward frequency sweeps (2-6 kHz)."""
    out = np.zeros(int(1.5 * sr))
    pos = 0
    lo = rng.uniform(2000, 3500)
    for _ in range(int(rng.integers(2, 7))):
        dur = rng.uniform(0.04, 0.12)
        n = int(dur * sr)
        f = np.linspace(lo, lo * rng.uniform(1.3, 1.8), n)
        x = _sine_from_freq(f, sr) * np.hanning(n)
        _place(out, x, pos)
        pos += n + int(rng.uniform(0.03, 0.15) * sr)
    return out[: max(pos, 1)]


def clap(rng: np.random.Generator, sr: int) -> np.ndarray:
    """1-4 claps: bursts of band-passed noise (1-5 kHz), each a few fast decays."""
    out = np.zeros(int(1.5 * sr))
    pos = 0
    for _ in range(int(rng.integers(1, 5))):
        n = int(0.12 * sr)
        env = sum(_ar_envelope(n, sr, 0.0005, 0.02) * (np.arange(n) >= int(k * 0.008 * sr))
                  for k in range(3))
        x = band_noise(rng, n, sr, 900, 5000) * env
        _place(out, x, pos)
        pos += int(rng.uniform(0.2, 0.4) * sr)
    return out[: max(pos, 1)]


def drip(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Water drops: 2-5 short resonant blips with rising pitch (500-1500 Hz)."""
    out = np.zeros(int(1.6 * sr))
    pos = 0
    for _ in range(int(rng.integers(2, 6))):
        n = int(0.06 * sr)
        f0 = rng.uniform(500, 1500)
        f = f0 * np.linspace(1.0, rng.uniform(1.8, 2.5), n)
        x = _sine_from_freq(f, sr) * _ar_envelope(n, sr, 0.001, 0.05)
        _place(out, x, pos)
        pos += n + int(rng.uniform(0.1, 0.3) * sr)
    return out[: max(pos, 1)]


def engine(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Low rumble: a pulse train at 20-60 Hz through a low-pass, with amplitude wobble."""
    dur = rng.uniform(1.0, 2.0)
    t = _t(dur, sr)
    n = len(t)
    rate = rng.uniform(20, 60)
    phase = np.cumsum(rate * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))) / sr
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    spec = np.fft.rfft(pulses + 0.05 * rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / sr) > rng.uniform(300, 800)] = 0
    x = np.fft.irfft(spec, n)
    return x * _ar_envelope(n, sr, 0.1, dur * 3)


def knock(rng: np.random.Generator, sr: int) -> np.ndarray:
    """2-4 knocks on wood: damped low resonances (100-300 Hz) plus a click."""
    out = np.zeros(int(1.5 * sr))
    pos = 0
    f0 = rng.uniform(100, 300)
    for _ in range(int(rng.integers(2, 5))):
        n = int(0.1 * sr)
        t = np.arange(n) / sr
        x = (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2.3 * f0 * t)) * np.exp(-t * 60)
        x[: int(0.002 * sr)] += rng.standard_normal(int(0.002 * sr)) * 0.5
        _place(out, x, pos)
        pos += int(rng.uniform(0.15, 0.3) * sr)
    return out[: max(pos, 1)]


def siren(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Slow up-down frequency modulation (wail) between about 600 and 1500 Hz."""
    dur = rng.uniform(1.0, 2.0)
    t = _t(dur, sr)
    lo, hi, rate = rng.uniform(500, 800), rng.uniform(1200, 1700), rng.uniform(0.7, 2.0)
    f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * rate * t))
    x = _sine_from_freq(f, sr) + 0.3 * _sine_from_freq(2 * f, sr)
    return x * _ar_envelope(len(t), sr, 0.05, dur * 4)


def whistle(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A breathy steady tone (1-2.5 kHz) with vibrato."""
    dur = rng.uniform(0.5, 1.5)
    t = _t(dur, sr)
    f = rng.uniform(1000, 2500) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    x = _sine_from_freq(f, sr) + 0.15 * band_noise(rng, len(t), sr, 800, 4000)
    return x * _ar_envelope(len(t), sr, 0.05, dur * 3) * np.hanning(len(t)) ** 0.2


def cough(rng: np.random.Generator, sr: int) -> np.ndarray:
    """1-3 coughs: a noisy burst with a low voiced component, sharp onset, fast decay."""
    out = np.zeros(int(1.6 * sr))
    pos = 0
    for _ in range(int(rng.integers(1, 4))):
        dur = rng.uniform(0.2, 0.35)
        n = int(dur * sr)
        f0 = rng.uniform(120, 250)
        voiced = sum(_sine_from_freq(np.full(n, k * f0), sr) / k for k in range(1, 6))
        x = (band_noise(rng, n, sr, 200, 2500) + 0.5 * voiced) * _ar_envelope(n, sr, 0.005, dur)
        _place(out, x, pos)
        pos += n + int(rng.uniform(0.1, 0.25) * sr)
    return out[: max(pos, 1)]


def rain(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Dense random droplets over high-passed noise (texture, 1-2 s)."""
    dur = rng.uniform(1.0, 2.0)
    n = int(dur * sr)
    x = 0.3 * band_noise(rng, n, sr, 2000, 7000)
    for start in rng.integers(0, n, size=int(rng.uniform(40, 120) * dur)):
        m = int(0.004 * sr)
        _place(x, rng.standard_normal(m) * np.exp(-np.arange(m) / (0.001 * sr)), int(start))
    return x * _ar_envelope(n, sr, 0.1, dur * 4)


SOUND_CLASSES: Dict[str, Synth] = {
    f.__name__: f
    for f in (alarm, bark, bell, chirp, clap, cough, drip, engine, knock, rain, siren, whistle)
}


def list_sound_classes() -> List[str]:
    """Names of the synthetic sound classes, sorted."""
    return sorted(SOUND_CLASSES)


def synthesize(name: str, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One random instance of sound class ``name``: float32 ``(samples,)``, 0.2-2 s, peak 0.5-0.9."""
    if name not in SOUND_CLASSES:
        raise ValueError(f"unknown sound class {name!r}; choose from {list_sound_classes()}")
    return _normalize(SOUND_CLASSES[name](rng, sample_rate), rng, sample_rate)


def ambience(rng: np.random.Generator, n: int, sample_rate: int = 16000) -> np.ndarray:
    """Background room tone: pink or brown noise, mains hum half of the time, slow level drift;
    ``n`` samples of float32 at unit RMS. The noisy background of the event scenes."""
    x = colored_noise(n, rng, "pink" if rng.random() < 0.5 else "brown").astype(np.float64)
    if rng.random() < 0.5:
        x += hum(n, sample_rate, rng) * db_to_amp(rng.uniform(-20.0, -8.0))
    t = np.arange(n) / sample_rate
    x *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def mix_at_snr(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + background`` scaled so that the RMS of ``signal`` is ``snr_db`` above it."""
    scale = db_to_amp(rms_db(signal) - rms_db(background) - snr_db)
    return (np.asarray(signal, np.float32) + scale * np.asarray(background, np.float32)).astype(np.float32)
