"""Musical notes: General MIDI instruments rendered by FluidSynth, and a numpy fallback synth.

FluidSynth is run as a subprocess (the ``fluidsynth`` command of the Debian package of that name,
2.x) on a Standard MIDI File written here, with a General MIDI SoundFont: by default
``/usr/share/sounds/sf2/FluidR3_GM.sf2`` (Debian ``fluid-soundfont-gm``), or ``$HEAR_SUITE_SOUNDFONT``.
No Python binding is needed. Many notes are rendered in one call (one note every
``spacing`` seconds, sliced afterwards), because starting FluidSynth loads the 140 MB SoundFont.

Rendering is deterministic: reverb and chorus are off and the output is 32-bit float, so no
dither noise is added.

>>> notes = render_isolated_notes([(0, 60, 100), (40, 67, 80)], sample_rate=16000)
>>> [n.shape for n in notes]        # 4 s each, NSynth-style: held 3 s, then release
[(64000,), (64000,)]
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# General MIDI program families (programs 8k..8k+7); 112-127 are percussive and sound effects.
GM_FAMILIES = ["piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble",
               "brass", "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic",
               "percussive", "sound_effects"]
MELODIC_PROGRAMS = list(range(0, 112))   # pitched instruments that follow the note number


@dataclass(frozen=True)
class Note:
    """A note: ``program`` (GM 0..127), MIDI ``pitch``, ``velocity`` 1..127, start and duration s."""

    program: int
    pitch: int
    velocity: int
    start: float
    duration: float


def soundfont_path() -> Optional[str]:
    path = os.environ.get("HEAR_SUITE_SOUNDFONT", DEFAULT_SOUNDFONT)
    return path if Path(path).is_file() else None


def fluidsynth_available() -> bool:
    """True when the ``fluidsynth`` command and a General MIDI SoundFont are installed."""
    return shutil.which("fluidsynth") is not None and soundfont_path() is not None


def gm_family(program: int) -> str:
    return GM_FAMILIES[program // 8]


# ---------------------------------------------------------------------------------------------
# Standard MIDI File (format 0), just what is needed here
# ---------------------------------------------------------------------------------------------

def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: Sequence[Note], ticks_per_second: int = 1000) -> bytes:
    """A format-0 MIDI file playing ``notes``; each note gets its own program change on a
    channel that is free at that time (channel 9, the drum channel, is never used)."""
    tempo_us = 500_000                                 # 120 bpm: a beat is 0.5 s
    division = ticks_per_second * tempo_us // 1_000_000
    events: List[Tuple[int, int, bytes]] = []          # (tick, order, message)
    channels = [c for c in range(16) if c != 9]
    busy_until = {c: -1.0 for c in channels}
    for note in sorted(notes, key=lambda n: (n.start, n.pitch)):
        if not (0 <= note.program < 128 and 0 <= note.pitch < 128 and 1 <= note.velocity < 128):
            raise ValueError(f"note out of MIDI range: {note}")
        free = [c for c in channels if busy_until[c] <= note.start]
        if not free:
            raise ValueError("more than 15 simultaneous notes")
        ch = free[0]
        busy_until[ch] = note.start + note.duration + 0.001
        on, off = int(round(note.start * ticks_per_second)), int(round((note.start + note.duration)
                                                                        * ticks_per_second))
        events.append((on, 0, bytes([0xC0 | ch, note.program])))
        events.append((on, 1, bytes([0x90 | ch, note.pitch, note.velocity])))
        events.append((off, -1, bytes([0x80 | ch, note.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big"))
    last = 0
    for tick, _, msg in events:
        track += _varlen(tick - last) + msg
        last = tick
    track += b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------

def render_notes(notes: Sequence[Note], sample_rate: int = 16000, *, duration: Optional[float] = None,
                 soundfont: Optional[str] = None, gain: float = 0.5) -> np.ndarray:
    """Render ``notes`` with FluidSynth; float32 mono ``(samples,)`` of length ``duration`` s
    (default: to the end of the last note plus 2 s of release)."""
    soundfont = soundfont or soundfont_path()
    if shutil.which("fluidsynth") is None or soundfont is None:
        raise RuntimeError("FluidSynth rendering needs the `fluidsynth` command and a General MIDI "
                           "SoundFont (Debian: apt-get install fluidsynth fluid-soundfont-gm; or set "
                           "HEAR_SUITE_SOUNDFONT)")
    if duration is None:
        duration = max(n.start + n.duration for n in notes) + 2.0
    with tempfile.TemporaryDirectory(prefix="hear_suite_fs_") as tmp:
        mid, wav = Path(tmp) / "notes.mid", Path(tmp) / "notes.wav"
        mid.write_bytes(midi_bytes(notes))
        cmd = ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(gain),
               "-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", str(wav),
               soundfont, str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz, asked for {sample_rate}")
    audio = audio.mean(axis=1)
    n = int(round(duration * sample_rate))
    return np.pad(audio[:n], (0, max(0, n - len(audio))))


def render_isolated_notes(requests: Sequence[Tuple[int, int, int]], sample_rate: int = 16000, *,
                          clip_s: float = 4.0, hold_s: float = 3.0, spacing_s: float = 6.0,
                          soundfont: Optional[str] = None, batch: int = 200) -> List[np.ndarray]:
    """NSynth-style isolated notes: for each ``(program, pitch, velocity)``, ``clip_s`` seconds
    with the key held ``hold_s`` seconds. Notes are ``spacing_s`` apart in one render and sliced;
    float32 ``(round(clip_s * sample_rate),)`` each, peak-normalised to 0.9 (silent notes stay 0)."""
    n_clip, n_space = int(round(clip_s * sample_rate)), int(round(spacing_s * sample_rate))
    out: List[np.ndarray] = []
    for b0 in range(0, len(requests), batch):
        part = requests[b0:b0 + batch]
        notes = [Note(p, k, v, i * spacing_s, hold_s) for i, (p, k, v) in enumerate(part)]
        audio = render_notes(notes, sample_rate, duration=len(part) * spacing_s,
                             soundfont=soundfont)
        for i in range(len(part)):
            x = audio[i * n_space:i * n_space + n_clip].copy()
            peak = np.abs(x).max()
            out.append((x * (0.9 / peak) if peak > 1e-4 else x).astype(np.float32))
    return out


def additive_note(pitch: int, sample_rate: int = 16000, *, rng: np.random.Generator,
                  clip_s: float = 4.0, hold_s: float = 3.0) -> np.ndarray:
    """Numpy stand-in for a rendered note: a harmonic tone with a random timbre (partial
    amplitudes, inharmonicity, attack, vibrato) and an ADSR envelope; float32, peak 0.9."""
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    n = int(round(clip_s * sample_rate))
    t = np.arange(n) / sample_rate
    tilt = rng.uniform(0.5, 2.0)
    odd_only = rng.random() < 0.3
    inharm = rng.uniform(0, 3e-4)
    vib = 1 + rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(4, 6.5) * t)
    x = np.zeros(n)
    for k in range(1, 25):
        fk = k * f0 * np.sqrt(1 + inharm * k * k)
        if fk > 0.45 * sample_rate or (odd_only and k % 2 == 0):
            continue
        amp = k ** -tilt * rng.uniform(0.5, 1.0)
        x += amp * np.sin(2 * np.pi * np.cumsum(fk * vib) / sample_rate + rng.uniform(0, 6.28))
    attack, decay, sustain = rng.uniform(0.005, 0.1), rng.uniform(0.1, 1.0), rng.uniform(0.2, 0.9)
    env = np.where(t < attack, t / attack,
                   sustain + (1 - sustain) * np.exp(-(t - attack) / decay))
    env *= np.where(t < hold_s, 1.0, np.exp(-(t - hold_s) / rng.uniform(0.05, 0.3)))
    x *= env
    return (x * 0.9 / (np.abs(x).max() + 1e-9)).astype(np.float32)
