"""A small formant voice for the replica suite's speech tasks (numpy + scipy only).

Speech Commands words, CREMA-D emotions, LibriCount speaker counts, VoxLingua languages and
GTZAN's speech class need a voice whose words, prosody, number of talkers or phonology carry the
label. This is a source-filter synthesiser: a pulse train at a moving pitch (voiced phones) or
noise (fricatives, bursts) through three formant resonators per phone, phones joined with short
fades. It is intelligible to a probe, not to a listener.

>>> rng = np.random.default_rng(0)
>>> x = speak(WORDS["yes"], random_speaker(rng), 16000, rng)   # float32 (samples,), about 0.4 s

Phones are strings: vowels (keys of :data:`VOWELS`), approximants and nasals (voiced, in
:data:`VOICED_CONSONANTS`), fricatives (:data:`FRICATIVES`) and plosives (:data:`PLOSIVES`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from hear_suite.taskgen.hear2021.audio import lowpass, normalize_peak, place, resonator

# Formants F1-F3 (Hz) of an adult male voice, after Peterson & Barney's vowel averages.
VOWELS: Dict[str, Tuple[float, float, float]] = {
    "i": (270, 2290, 3010), "I": (390, 1990, 2550), "E": (530, 1840, 2480), "ae": (660, 1720, 2410),
    "a": (730, 1090, 2440), "O": (570, 840, 2410), "U": (440, 1020, 2240), "u": (300, 870, 2240),
    "V": (640, 1190, 2390), "3": (490, 1350, 1690), "o": (450, 800, 2500), "e": (400, 2100, 2700),
}
VOICED_CONSONANTS: Dict[str, Tuple[float, float, float]] = {
    "l": (360, 1300, 2700), "r": (420, 1300, 1600), "j": (270, 2200, 3000), "w": (300, 700, 2200),
    "m": (250, 1000, 2200), "n": (250, 1500, 2500),
}
FRICATIVES: Dict[str, Tuple[float, float]] = {  # centre and bandwidth (Hz) of the noise
    "s": (6000, 3000), "sh": (3500, 2000), "f": (4500, 5000), "h": (1500, 3000), "th": (5000, 6000),
}
PLOSIVES: Dict[str, Tuple[float, bool]] = {  # burst centre (Hz), voiced
    "p": (800, False), "t": (4500, False), "k": (2000, False),
    "b": (700, True), "d": (4000, True), "g": (1800, True),
}
DURATIONS = {"vowel": 0.12, "voiced": 0.07, "fricative": 0.11, "plosive": 0.06}  # seconds at rate 1

# The ten Speech Commands words as phone strings.
WORDS: Dict[str, List[str]] = {
    "down": ["d", "a", "U", "n"], "go": ["g", "o", "U"], "left": ["l", "E", "f", "t"],
    "no": ["n", "o", "U"], "off": ["O", "f"], "on": ["O", "n"], "right": ["r", "a", "I", "t"],
    "stop": ["s", "t", "O", "p"], "up": ["V", "p"], "yes": ["j", "E", "s"],
}
CONSONANTS = tuple(VOICED_CONSONANTS) + tuple(FRICATIVES) + tuple(PLOSIVES)


def phone_kind(phone: str) -> str:
    if phone in VOWELS:
        return "vowel"
    if phone in VOICED_CONSONANTS:
        return "voiced"
    if phone in FRICATIVES:
        return "fricative"
    if phone in PLOSIVES:
        return "plosive"
    raise ValueError(f"unknown phone {phone!r}")


@dataclass(frozen=True)
class Speaker:
    f0: float             # mean pitch, Hz
    formant_scale: float  # vocal tract length: 1.0 adult male, about 1.2 adult female
    rate: float           # speaking rate, 1.0 = the durations of DURATIONS
    breath: float         # aspiration noise mixed into voiced phones, 0-1


def random_speaker(rng: np.random.Generator) -> Speaker:
    """A random adult voice: male or female pitch and tract length, rate, breathiness."""
    female = rng.random() < 0.5
    return Speaker(f0=rng.uniform(165, 255) if female else rng.uniform(85, 155),
                   formant_scale=rng.uniform(1.1, 1.25) if female else rng.uniform(0.92, 1.05),
                   rate=rng.uniform(0.8, 1.25), breath=rng.uniform(0.0, 0.3))


@dataclass(frozen=True)
class Prosody:
    """How a phrase is said: pitch factor and range, tempo, level (dB), jitter (pitch noise),
    declination (pitch fall over the phrase, as a fraction)."""
    pitch: float = 1.0
    pitch_range: float = 0.1
    tempo: float = 1.0
    level_db: float = 0.0
    jitter: float = 0.0
    declination: float = 0.15


def speak(phones: Sequence[str], speaker: Speaker, sr: int, rng: np.random.Generator,
          prosody: Prosody = Prosody()) -> np.ndarray:
    """Synthesise ``phones``: float32 ``(samples,)``, peak ``0.9 * 10**(level_db / 20)`` / 2."""
    kinds = [phone_kind(p) for p in phones]
    durs = [DURATIONS[k] * rng.uniform(0.8, 1.25) / (speaker.rate * prosody.tempo) for k in kinds]
    bounds = np.concatenate([[0], np.cumsum([int(d * sr) for d in durs])])
    n = int(bounds[-1])
    # pitch: declination, a slow random melody and jitter; pulses where the phase wraps
    t = np.arange(n) / sr
    melody = np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * t + rng.uniform(0, 2 * np.pi))
    f0 = speaker.f0 * prosody.pitch * (1 + prosody.pitch_range * melody) \
        * (1 - prosody.declination * t / max(t[-1], 1e-3))
    if prosody.jitter:
        f0 *= 1 + prosody.jitter * lowpass(rng.standard_normal(n).astype(np.float32), sr, 30.0) * 5
    phase = np.cumsum(f0 / sr)
    pulses = np.zeros(n, np.float32)
    pulses[np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)] = 1.0
    source = lowpass(lowpass(pulses, sr, 200.0), sr, 400.0)  # glottal roll-off, -12 dB/octave
    source = np.diff(source, prepend=0.0).astype(np.float32) * np.float32(sr / 100)  # lip radiation
    out = np.zeros(n, np.float32)
    for phone, kind, a, b in zip(phones, kinds, bounds[:-1], bounds[1:]):
        seg = _phone(phone, kind, source[a:b], speaker, sr, rng)
        out[a:b] += _edges(seg, sr)
    return normalize_peak(out, 0.45 * 10 ** (prosody.level_db / 20))


def _edges(x: np.ndarray, sr: int, ms: float = 8.0) -> np.ndarray:
    m = min(len(x) // 2, int(ms * sr / 1000))
    if m:
        ramp = np.linspace(0, 1, m, dtype=np.float32)
        x[:m] *= ramp
        x[-m:] *= ramp[::-1]
    return x


def _formants(x: np.ndarray, freqs: Sequence[float], scale: float, sr: int) -> np.ndarray:
    y = np.zeros_like(x)
    for i, f in enumerate(freqs):  # parallel resonators, upper formants weaker
        y += resonator(x, sr, f * scale, 60 + 40 * i) * np.float32(0.5 ** i)
    return y


def _phone(phone: str, kind: str, source: np.ndarray, speaker: Speaker, sr: int,
           rng: np.random.Generator) -> np.ndarray:
    n = len(source)
    if kind in ("vowel", "voiced"):
        table = VOWELS if kind == "vowel" else VOICED_CONSONANTS
        x = source + np.float32(speaker.breath * 0.3) * rng.standard_normal(n).astype(np.float32)
        y = _formants(x, table[phone], speaker.formant_scale, sr)
        return y * np.float32(1.0 if kind == "vowel" else 0.4)
    if kind == "fricative":
        centre, width = FRICATIVES[phone]
        noise = rng.standard_normal(n).astype(np.float32)
        y = resonator(noise, sr, min(centre * speaker.formant_scale, 0.4 * sr), width)
        return y * np.float32(0.15)
    centre, voiced = PLOSIVES[phone]  # closure (silence or a voice bar), then a 15 ms burst
    y = lowpass(source, sr, 300.0) * np.float32(0.3) if voiced else np.zeros(n, np.float32)
    m = min(n // 2, int(0.015 * sr))
    burst = resonator(rng.standard_normal(m).astype(np.float32), sr, min(centre, 0.4 * sr), centre)
    y[n - m:] += burst * np.linspace(1, 0, m, dtype=np.float32) * np.float32(0.5)
    return y


# ---------------------------------------------------------------------------------------------
# phrases
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Language:
    """Phonology of a made-up language: its vowels and consonants, syllable shapes (templates
    of C and V) with their weights, syllable tempo, and pitch pattern."""
    vowels: Tuple[str, ...]
    consonants: Tuple[str, ...]
    templates: Tuple[str, ...]
    weights: Tuple[float, ...]
    tempo: float
    prosody: Prosody


def make_language(index: int) -> Language:
    """Language ``index``: the same for every seed (a language does not change with the task)."""
    rng = np.random.default_rng([2021, index])
    vowels = tuple(rng.choice(list(VOWELS), size=int(rng.integers(3, 8)), replace=False))
    consonants = tuple(rng.choice(list(CONSONANTS), size=int(rng.integers(5, 12)), replace=False))
    templates = ("CV", "CVC", "V", "CCV", "VC")
    weights = rng.dirichlet(np.ones(len(templates)) * 0.7)
    prosody = Prosody(pitch=1.0, pitch_range=rng.uniform(0.05, 0.3), tempo=1.0,
                      declination=rng.uniform(0.0, 0.3))
    return Language(vowels, consonants, templates, tuple(weights), rng.uniform(0.8, 1.3), prosody)


def syllables(language: Language, n: int, rng: np.random.Generator) -> List[str]:
    """``n`` random syllables of ``language`` as one phone list."""
    phones: List[str] = []
    for _ in range(n):
        template = language.templates[int(rng.choice(len(language.templates), p=language.weights))]
        for c in template:
            pool = language.vowels if c == "V" else language.consonants
            phones.append(pool[int(rng.integers(len(pool)))])
    return phones


def talk(n: int, sr: int, rng: np.random.Generator, *, speaker: Speaker, language: Language,
         prosody: Prosody = None, start_s: float = 0.0) -> np.ndarray:
    """``n`` samples of ``speaker`` talking ``language`` in phrases of 3-8 syllables separated
    by 0.15-0.6 s pauses, from ``start_s``; silence elsewhere."""
    prosody = prosody or language.prosody
    prosody = Prosody(prosody.pitch, prosody.pitch_range, prosody.tempo * language.tempo,
                      prosody.level_db, prosody.jitter, prosody.declination)
    out = np.zeros(n, np.float32)
    pos = int(start_s * sr)
    while pos < n:
        phrase = speak(syllables(language, int(rng.integers(3, 9)), rng), speaker, sr, rng, prosody)
        place(out, phrase, pos)
        pos += len(phrase) + int(rng.uniform(0.15, 0.6) * sr)
    return out


# CREMA-D's six emotions as prosody (pitch, range, tempo, level, jitter, declination).
EMOTIONS: Dict[str, Prosody] = {
    "NEU": Prosody(1.0, 0.06, 1.0, 0.0, 0.0, 0.15),
    "HAP": Prosody(1.2, 0.25, 1.1, 3.0, 0.0, 0.05),
    "SAD": Prosody(0.9, 0.03, 0.75, -6.0, 0.01, 0.25),
    "ANG": Prosody(1.15, 0.2, 1.15, 6.0, 0.02, 0.1),
    "FEA": Prosody(1.35, 0.15, 1.25, 0.0, 0.04, 0.0),
    "DIS": Prosody(0.95, 0.12, 0.85, -2.0, 0.06, 0.3),
}
ENGLISH = Language(tuple(VOWELS), CONSONANTS, ("CV", "CVC", "V"), (0.5, 0.4, 0.1), 1.0, Prosody())


def sentence(index: int) -> List[str]:
    """CREMA-D has 12 sentences, each said with every emotion: sentence ``index`` (0-11) as
    a fixed phone list, the same for every seed."""
    return syllables(ENGLISH, 7 + index % 4, np.random.default_rng([12, index]))


def pseudo_word(rng: np.random.Generator) -> List[str]:
    """A random word of 1-2 syllables (Speech Commands' "_unknown_" class)."""
    return syllables(ENGLISH, int(rng.integers(1, 3)), rng)
