"""Synthetic stand-ins for the audio of the HEAR 2021 tasks (numpy + scipy only).

The replica suite (:mod:`hear_suite.taskgen.hear2021.suite`) needs audio whose *shape* is that of
the real task (length, number of labels, how a label shows in the signal) and whose label can be
heard, so a probe can learn it; nothing here tries to sound like the real recordings. Voices
are in :mod:`hear_suite.taskgen.hear2021.voice`; this module holds the rest:

- :func:`indexed_sound`: label ``k`` of a vocabulary of any size as one of the synthetic sound
  classes of :mod:`hear_suite.corpora.sounds` played at a label-specific speed (ESC-50,
  FSD50K, vocal imitations, DCASE office events).
- :func:`note`: a decaying harmonic tone at a MIDI pitch (NSynth, MAESTRO, GTZAN, mridangam).
- :func:`piano_roll`: dense polyphonic note events with onset/offset labels (MAESTRO).
- :func:`event_scene`: non-overlapping events over room tone (DCASE 2016 task 2).
- :func:`opera_stroke`, :func:`gunshot`, :func:`mridangam_stroke`, :func:`genre_excerpt`,
  :func:`beehive`: the family of one task each.

Every function draws from the ``numpy.random.Generator`` it is given and nothing else, returns
float32 mono ``(samples,)`` with peak <= 0.9, and works at any sample rate (audio is synthesised
at the task's rate, 48 kHz by default, so nothing is resampled on the way to disk).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.signal import lfilter

from hear_suite.corpora import sounds
from hear_suite.corpora.effects import colored_noise, db_to_amp, fade, rms_db

SOUND_CLASSES = tuple(sounds.list_sound_classes())


def normalize_peak(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """``x`` as float32 scaled to a peak of ``peak`` (silence stays silent)."""
    x = np.asarray(x, dtype=np.float32)
    m = float(np.abs(x).max()) if len(x) else 0.0
    return x * np.float32(peak / m) if m > 1e-9 else x


def _decay(n: int, sr: int, attack: float, t60: float) -> np.ndarray:
    """Linear attack over ``attack`` s, then exponential decay reaching -60 dB after ``t60`` s."""
    t = np.arange(n, dtype=np.float32) / sr
    env = np.exp(-6.9 * np.maximum(t - attack, 0) / max(t60, 1e-3))
    if attack > 0:
        env *= np.minimum(t / attack, 1.0)
    return env.astype(np.float32)


def lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    """One-pole low-pass (6 dB/octave above ``cutoff`` Hz): cheap at any length."""
    a = float(np.exp(-2 * np.pi * cutoff / sr))
    return lfilter([1 - a], [1, -a], x).astype(np.float32)


def resonator(x: np.ndarray, sr: int, freq: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonance at ``freq`` Hz with ``bandwidth`` Hz, unit gain near the peak."""
    r = float(np.exp(-np.pi * bandwidth / sr))
    theta = 2 * np.pi * min(freq, 0.45 * sr) / sr
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch up, shorter) by linear interpolation."""
    if abs(factor - 1) < 1e-6:
        return np.asarray(x, np.float32)
    positions = np.arange(0, len(x) - 1, factor)
    return np.interp(positions, np.arange(len(x)), x).astype(np.float32)


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add ``x`` into ``out`` at sample ``start`` (cut at the end)."""
    end = min(len(out), start + len(x))
    if end > start:
        out[start:end] += x[: end - start]


def room_tone(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Background of ``n`` samples at unit RMS (:func:`hear_suite.corpora.sounds.ambience`)."""
    return sounds.ambience(rng, n, sr)


def mix_over(signal: np.ndarray, rng: np.random.Generator, sr: int,
             snr_db: Tuple[float, float]) -> np.ndarray:
    """``signal`` over room tone ``snr_db`` (range, dB) below it; peak-limited."""
    bg = room_tone(rng, len(signal), sr)
    return normalize_peak(sounds.mix_at_snr(signal, bg, rng.uniform(*snr_db)), 0.9)


# ---------------------------------------------------------------------------------------------
# labelled sounds for vocabularies of any size
# ---------------------------------------------------------------------------------------------

def sound_recipe(k: int, n_labels: int) -> Tuple[str, float]:
    """``(sound class, speed factor)`` that renders label ``k`` of ``n_labels``.

    Labels cycle through the sound classes; the i-th pass over them plays ``2**(o)`` times
    faster, with octave offsets ``o`` spread evenly over at most +-1 octave (one pass: 1.0), so
    every label has its own recipe."""
    if not 0 <= k < n_labels:
        raise ValueError(f"label index {k} outside 0..{n_labels - 1}")
    passes = -(-n_labels // len(SOUND_CLASSES))
    cls, p = SOUND_CLASSES[k % len(SOUND_CLASSES)], k // len(SOUND_CLASSES)
    octave = 0.0 if passes == 1 else -1.0 + 2.0 * p / (passes - 1)
    return cls, float(2.0 ** octave)


def indexed_sound(k: int, n_labels: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """One random instance of label ``k`` (:func:`sound_recipe`); about 0.1-4 s, peak 0.5-0.9."""
    cls, factor = sound_recipe(k, n_labels)
    return speed(sounds.synthesize(cls, rng, sr), factor)


def labelled_clip(labels: Sequence[int], n_labels: int, n: int, rng: np.random.Generator,
                  sr: int, snr_db: Tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """``n`` samples with one instance of each label index of ``labels`` at a random position
    (+-6 dB each), over room tone. A clip shorter than a sound keeps its middle part."""
    mix = np.zeros(n, np.float32)
    for k in labels:
        x = indexed_sound(k, n_labels, rng, sr) * np.float32(db_to_amp(rng.uniform(-6, 6)))
        if len(x) > n:
            start = int(rng.integers(0, len(x) - n + 1))
            x = x[start:start + n]
        place(mix, fade(x, sr), int(rng.integers(0, n - len(x) + 1)))
    return mix_over(mix, rng, sr, snr_db)


def event_scene(labels: Sequence[str], sound_for: Dict[str, int], n_labels: int, n: int,
                rng: np.random.Generator, sr: int, *, gap_s: Tuple[float, float] = (0.5, 4.0),
                snr_db: Tuple[float, float] = (0.0, 15.0)) -> Tuple[np.ndarray, List[Dict]]:
    """An event clip: room tone of ``n`` samples with non-overlapping events, labels drawn in
    turn from ``labels`` (cycled), each rendered by :func:`indexed_sound` of ``sound_for[label]``.
    Returns the audio and the events ``{"label", "start", "end"}`` in ms (audible extent)."""
    bg = room_tone(rng, n, sr) * np.float32(0.05)
    bg_db = rms_db(bg)
    audio, events = bg.copy(), []
    t, i = int(rng.uniform(0.2, gap_s[1]) * sr), 0
    while True:
        label = labels[i % len(labels)]
        x = indexed_sound(sound_for[label], n_labels, rng, sr)
        loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())  # audible extent, -40 dB
        x = x[loud[0]:loud[-1] + 1]
        if t + len(x) > n - int(0.2 * sr):
            if events:
                break
            # a clip too short for its first event still gets one: start early and cut it
            t = min(t, int(0.2 * sr))
            x = x[:max(1, n - int(0.2 * sr) - t)]
        x = x * np.float32(db_to_amp(bg_db + rng.uniform(*snr_db) - rms_db(x)))
        audio[t:t + len(x)] += x
        events.append({"label": label, "start": round(1000 * t / sr, 3),
                       "end": round(1000 * (t + len(x)) / sr, 3)})
        t += len(x) + int(rng.uniform(*gap_s) * sr)
        i += 1
    return normalize_peak(audio, 0.98), events


# ---------------------------------------------------------------------------------------------
# pitched notes
# ---------------------------------------------------------------------------------------------

def midi_hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def random_timbre(rng: np.random.Generator, partials: int = 8) -> np.ndarray:
    """Relative amplitudes of ``partials`` harmonics: a spectral tilt, some partials weakened."""
    k = np.arange(1, partials + 1)
    amps = k ** -rng.uniform(0.6, 2.0) * rng.uniform(0.3, 1.0, partials)
    if rng.random() < 0.3:  # clarinet-like: odd harmonics only
        amps[1::2] *= 0.05
    return amps.astype(np.float32)


def note(pitch: float, n: int, sr: int, timbre: np.ndarray, *, hold: int, t60: float = 1.0,
         attack: float = 0.005, release: float = 0.1, phase_rng=None) -> np.ndarray:
    """A harmonic tone at MIDI ``pitch`` (fractional allowed): ``n`` samples, partial ``k`` at
    ``k * f0`` with amplitude ``timbre[k-1]`` (those above 0.45 ``sr`` dropped), decaying with
    ``t60`` s while held for ``hold`` samples, then released over ``release`` s. Peak 0.9."""
    f0 = midi_hz(pitch)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    x = np.zeros(n, np.float32)
    for k, amp in enumerate(timbre, start=1):
        if k * f0 > 0.45 * sr:
            break
        phase = 0.0 if phase_rng is None else phase_rng.uniform(0, 2 * np.pi)
        x += np.float32(amp) * np.sin(np.float32(2 * np.pi * k * f0) * t + np.float32(phase))
    env = _decay(n, sr, attack, t60)
    if hold < n:
        env[hold:] *= np.exp(-6.9 * np.arange(n - hold, dtype=np.float32) / (release * sr))
    return normalize_peak(x * env)


def nsynth_note(pitch: int, timbre: np.ndarray, velocity: float, sr: int,
                rng: np.random.Generator, *, clip_s: float = 4.0, hold_s: float = 3.0) -> np.ndarray:
    """An NSynth-style note: ``clip_s`` s, held ``hold_s`` s then released, level ``velocity``."""
    n = int(round(clip_s * sr))
    x = note(pitch, n, sr, timbre, hold=int(hold_s * sr), t60=rng.uniform(1.0, 6.0),
             attack=rng.uniform(0.002, 0.08), release=rng.uniform(0.05, 0.3), phase_rng=rng)
    return x * np.float32(velocity)


def piano_roll(pitches: Sequence[int], n: int, sr: int, rng: np.random.Generator, *,
               notes_per_s: float = 4.0) -> Tuple[np.ndarray, List[Dict]]:
    """A MAESTRO-style excerpt of ``n`` samples: notes at Poisson onsets (``notes_per_s``),
    overlapping freely (polyphony), pitches taken in turn from ``pitches`` (cycled), durations
    0.1-1.5 s, piano-like decay. Events ``{"label": "<midi>", "start", "end"}`` in ms, from
    onset to release, cut at the end of the clip as hear-preprocess does."""
    audio = np.zeros(n, np.float32)
    events, i = [], 0
    t = min(rng.exponential(1 / notes_per_s), 0.5 * n / sr)  # a short clip still has a note
    timbre = np.array([1.0, 0.5, 0.33, 0.2, 0.12, 0.08], np.float32)  # bright, few partials
    while t < n / sr - 0.05:
        pitch = int(pitches[i % len(pitches)])
        dur = rng.uniform(0.1, 1.5)
        length = min(int((dur + 0.3) * sr), n - int(t * sr))
        x = note(pitch, length, sr, timbre, hold=int(dur * sr), t60=rng.uniform(0.8, 3.0),
                 release=0.08) * np.float32(rng.uniform(0.2, 0.6))
        start = int(t * sr)
        audio[start:start + length] += x
        events.append({"label": str(pitch), "start": round(1000 * t, 3),
                       "end": round(1000 * min(t + dur, n / sr), 3)})
        t += rng.exponential(1 / notes_per_s)
        i += 1
    noise = colored_noise(n, rng, "pink") * np.float32(db_to_amp(-45))  # recording noise
    return normalize_peak(audio + noise, 0.9), events


# ---------------------------------------------------------------------------------------------
# one family per task
# ---------------------------------------------------------------------------------------------

# Beijing opera percussion: (base Hz, pitch glide over the stroke (ratio), decay s, noise share)
OPERA = {"bangu": (900.0, 1.0, 0.08, 0.6),     # small high drum: short, dry
         "daluo": (180.0, 0.8, 1.8, 0.2),      # large gong: low, falling pitch, long
         "naobo": (3500.0, 1.0, 1.2, 0.9),     # cymbals: noisy, metallic
         "xiaoluo": (500.0, 1.25, 0.9, 0.2)}   # small gong: rising pitch


def opera_stroke(kind: str, n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """1-3 strokes of Beijing opera instrument ``kind`` (:data:`OPERA`) in ``n`` samples."""
    base, glide, t60, noisy = OPERA[kind]
    out = np.zeros(n, np.float32)
    pos = int(rng.uniform(0.0, 0.3) * sr)
    for _ in range(int(rng.integers(1, 4))):
        m = min(int((t60 + 0.1) * sr), n)
        f0 = base * rng.uniform(0.93, 1.07) * np.geomspace(1.0, glide, m)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        tone = sum(np.sin(r * phase) / (1 + i) for i, r in enumerate((1.0, 1.51, 2.37, 3.1)))
        x = (1 - noisy) * tone / 2 + noisy * colored_noise(m, rng, "white")
        x = resonator(x.astype(np.float32), sr, base * 1.5, base) if noisy > 0.5 else x
        place(out, (x * _decay(m, sr, 0.001, t60 * rng.uniform(0.8, 1.2))).astype(np.float32), pos)
        pos += int(rng.uniform(0.25, 0.8) * sr)
    return mix_over(out, rng, sr, (20.0, 40.0))


def gunshot(mic: int, n: int, rng: np.random.Generator, sr: int, shot_rng: np.random.Generator,
            onset_s: float = 0.125) -> np.ndarray:
    """One shot as heard by microphone ``mic`` (0-3), ``onset_s`` into ``n`` samples.

    ``shot_rng`` draws the shot itself (shared by the 4 microphones of one shot); each
    microphone has its own distance, hence level, air absorption (low-pass) and reverberation."""
    m = int(0.8 * sr)
    muzzle = colored_noise(m, shot_rng, "white") * _decay(m, sr, 0.0003, shot_rng.uniform(0.05, 0.12))
    boom = np.sin(2 * np.pi * shot_rng.uniform(60, 120) * np.arange(m) / sr)
    boom = boom * _decay(m, sr, 0.002, 0.3)
    shot = (muzzle + 0.5 * boom).astype(np.float32)
    distance = (1.0, 2.2, 3.8, 6.0)[mic] * rng.uniform(0.9, 1.1)   # relative distance per mic
    heard = lowpass(shot, sr, 9000 / distance) / np.float32(distance)
    # reverberant tail: the farther the microphone, the larger its share and the longer it lasts
    tail = lowpass(colored_noise(m, rng, "pink") * _decay(m, sr, 0.01, 0.15 * distance), sr, 3000)
    tail *= np.float32(0.05 * distance * np.abs(heard).max() / (np.abs(tail).max() + 1e-9))
    out = np.zeros(n, np.float32)
    place(out, heard + tail, int(onset_s * sr))
    return mix_over(out, rng, sr, (25.0, 40.0))


# Mridangam strokes: (partial amplitudes of the membrane's harmonic modes, t60 s, slap noise,
# pitch bend at the onset in semitones). Open strokes ring, closed ones are damped.
MRIDANGAM = {
    "bheem": ([1.0, 0.2, 0.1], 0.60, 0.05, 0.0), "cha": ([0.2, 0.6, 0.5], 0.10, 0.50, 0.0),
    "dheem": ([1.0, 0.5, 0.3], 0.55, 0.10, 1.5), "dhin": ([0.6, 0.8, 0.4], 0.45, 0.15, 0.0),
    "num": ([0.8, 1.0, 0.3], 0.50, 0.05, 0.0), "ta": ([0.1, 0.3, 0.2], 0.06, 0.80, 0.0),
    "tha": ([0.3, 0.2, 0.1], 0.05, 0.60, 0.0), "tham": ([1.0, 0.7, 0.6], 0.40, 0.30, 0.0),
    "thi": ([0.2, 0.4, 0.9], 0.15, 0.40, 0.0), "thom": ([1.0, 0.1, 0.05], 0.35, 0.20, -1.0),
}
TONICS = {"b": 59, "c": 60, "csh": 61, "d": 62, "dsh": 63, "e": 64}  # MIDI of each tonic name


def mridangam_stroke(stroke: str, tonic: str, n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """One mridangam stroke (:data:`MRIDANGAM`) tuned to ``tonic`` (:data:`TONICS`)."""
    amps, t60, slap, bend = MRIDANGAM[stroke]
    f0 = midi_hz(TONICS[tonic] + rng.normal(0, 0.1))
    m = n - int(0.01 * sr)
    glide = f0 * 2 ** (bend / 12 * np.exp(-np.arange(m) / (0.05 * sr)))
    phase = 2 * np.pi * np.cumsum(glide) / sr
    x = sum(a * np.sin(k * phase) for k, a in enumerate(amps, start=1))
    x = x * _decay(m, sr, 0.001, t60 * rng.uniform(0.85, 1.15))
    x += slap * colored_noise(m, rng, "white") * _decay(m, sr, 0.0005, 0.03)
    out = np.zeros(n, np.float32)
    place(out, np.asarray(x, np.float32), int(rng.uniform(0.0, 0.01) * sr))
    return mix_over(out, rng, sr, (25.0, 40.0))


# GTZAN genres: (tempo BPM range, mode intervals, drum density 0-1, distortion, swing, notes/beat)
GENRES = {
    "blues": ((70, 100), (0, 3, 5, 6, 7, 10), 0.5, 0.2, 0.3, 1),
    "classical": ((60, 120), (0, 2, 4, 5, 7, 9, 11), 0.0, 0.0, 0.0, 2),
    "country": ((100, 130), (0, 2, 4, 7, 9), 0.6, 0.0, 0.1, 2),
    "disco": ((115, 130), (0, 2, 3, 5, 7, 10), 1.0, 0.0, 0.0, 2),
    "hiphop": ((80, 100), (0, 3, 5, 7, 10), 0.9, 0.1, 0.25, 1),
    "jazz": ((90, 180), (0, 2, 3, 5, 7, 9, 10, 11), 0.4, 0.0, 0.35, 3),
    "metal": ((140, 200), (0, 1, 3, 5, 7, 8), 1.0, 0.9, 0.0, 4),
    "pop": ((100, 125), (0, 2, 4, 5, 7, 9), 0.8, 0.05, 0.0, 2),
    "reggae": ((70, 90), (0, 2, 4, 5, 7, 9), 0.6, 0.0, 0.15, 1),
    "rock": ((110, 150), (0, 2, 3, 5, 7, 10), 0.9, 0.6, 0.0, 2),
}


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    m = int(0.25 * sr)
    if kind == "kick":
        f = 50 + 100 * np.exp(-np.arange(m) / (0.02 * sr))
        return (np.sin(2 * np.pi * np.cumsum(f) / sr) * _decay(m, sr, 0.001, 0.25)).astype(np.float32)
    if kind == "snare":
        return (colored_noise(m, rng, "white") * _decay(m, sr, 0.001, 0.15) * 0.6).astype(np.float32)
    hat = colored_noise(m // 4, rng, "white") * _decay(m // 4, sr, 0.0005, 0.04) * 0.3
    return hat.astype(np.float32)


def genre_excerpt(genre: str, n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """``n`` samples of a synthetic band in the style of ``genre`` (:data:`GENRES`): drums on a
    step grid, a bass line and a melody in the genre's scale at its tempo, distortion for the
    loud genres. Style (tempo, key, timbre) is drawn per excerpt."""
    (lo, hi), scale, drums, dist, swing, per_beat = GENRES[genre]
    beat = 60.0 / rng.uniform(lo, hi)
    key = int(rng.integers(40, 52))
    out = np.zeros(n, np.float32)
    lead, bass = random_timbre(rng, 6), np.array([1.0, 0.4, 0.2], np.float32)
    kit = {k: _drum(k, sr, rng) for k in ("kick", "snare", "hat")}
    t, step = 0.0, 0
    while t < n / sr:
        start = int(t * sr)
        if rng.random() < drums:
            place(out, kit["kick" if step % 4 == 0 else "snare" if step % 4 == 2 else "hat"], start)
        if step % 2 == 0:
            length = int(2 * beat * sr)
            place(out, note(key - 12 + scale[int(rng.integers(len(scale)))], length, sr, bass,
                            hold=length // 2, t60=1.5) * np.float32(0.5), start)
        for j in range(per_beat):
            length = int(beat / per_beat * sr * 1.5)
            onset = start + int((j + (swing if j % 2 else 0)) * beat / per_beat * sr)
            pitch = key + 12 + scale[int(rng.integers(len(scale)))]
            place(out, note(pitch, length, sr, lead, hold=length * 2 // 3, t60=2.0)
                  * np.float32(rng.uniform(0.2, 0.4)), onset)
        t += beat
        step += 1
    if dist > 0:
        out = np.tanh(out * np.float32(1 + 10 * dist)).astype(np.float32)
    return mix_over(out, rng, sr, (30.0, 45.0))


def beehive(queen: bool, n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """``n`` samples inside a hive: the colony's hum (harmonics of 200-260 Hz wandering slowly,
    with buzz noise), louder and rougher without a queen; with one, the queen's piping (short
    bursts near 400-500 Hz) now and then. Built in float32 so that ten minutes at 48 kHz take
    about a second each."""
    t = np.arange(n, dtype=np.float64) / sr
    f0 = rng.uniform(200, 260) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.01, 0.05) * t))
    phase = (2 * np.pi * np.cumsum(f0 / sr)).astype(np.float32)
    del t, f0
    roughness = 0.6 if not queen else 0.25
    hum = np.zeros(n, np.float32)
    for k in range(1, 6):
        hum += np.float32(k ** -1.2) * np.sin(np.float32(k) * phase)
    del phase
    buzz = lowpass(rng.standard_normal(n).astype(np.float32), sr, 800.0)
    hum += np.float32(roughness * 4) * buzz
    if queen:  # piping: 0.2-1 s tones near 450 Hz, a few per minute
        for start in np.cumsum(rng.exponential(20.0, size=int(n / sr / 5))):
            if start >= n / sr - 1:
                break
            m = int(rng.uniform(0.2, 1.0) * sr)
            f = rng.uniform(400, 500)
            pipe = np.sin(2 * np.pi * f * np.arange(m, dtype=np.float32) / sr) * np.hanning(m)
            place(hum, (pipe * 1.5).astype(np.float32), int(start * sr))
    return normalize_peak(hum, 0.7)
