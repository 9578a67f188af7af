"""A general-audio corpus: speech, music, noises and events mixed into clips of 1-10 s, written as
a HEAR multilabel scene task (labels: ``speech``, ``music``, ``noise`` and the event classes of
:mod:`hear_suite.corpora.sounds`).

Each clip draws 1-3 foreground sources (a spoken sentence from a random espeak-ng/Festival
speaker, a random FluidSynth melody on a General MIDI instrument or the numpy note synth when
FluidSynth is missing, 1-4 synthetic events) placed at random times over a room-tone background
(:func:`sounds.ambience`), which is labelled ``noise`` when it is loud (SNR of the foreground
below 10 dB), plus some noise-only clips. Everything is drawn from ``np.random.default_rng``
keyed by ``(seed, clip index)``: the same seed gives the same corpus.

>>> build_general(Path("/tmp/tasks"), GeneralConfig(n_clips=300))   # -> /tmp/tasks/general-v1-full

From the shell: ``hear-suite make-corpus general --out TASKS --clips 300 --seed 0``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from hear_suite.corpora import effects, music, sounds, speech
from hear_suite.tasks import MULTILABEL, SCENE, TaskWriter

WORDS = ("the quick brown fox jumps over a lazy dog while seven birds sing near the old house "
         "please call me tomorrow morning before nine we should go left then right and stop "
         "music makes people happy every day under blue sky rain falls on green fields").split()


@dataclass(frozen=True)
class GeneralConfig:
    seed: int = 0
    n_clips: int = 300
    min_seconds: float = 1.0
    max_seconds: float = 10.0
    splits: Tuple[float, float, float] = (0.7, 0.15, 0.15)
    sample_rate: int = 16000
    task_name: str = "general"


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))


def _speech(rng: np.random.Generator, sr: int, speakers: List[speech.Speaker]) -> np.ndarray:
    spk = speakers[int(rng.integers(len(speakers)))]
    return speech.speak(_sentence(rng), spk, sample_rate=sr, rng=rng)


def _music(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    length = float(rng.uniform(1.0, max(1.0, seconds)))
    program = int(rng.integers(0, 112))
    notes, t = [], 0.0
    root = int(rng.integers(40, 76))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    while t < length:
        dur = float(rng.choice([0.125, 0.25, 0.5, 1.0]))
        chord = rng.random() < 0.3
        for k in ([0, 2, 4] if chord else [0]):
            pitch = root + int(scale[(int(rng.integers(0, 6)) + k) % len(scale)])
            notes.append(music.Note(program, pitch, int(rng.integers(60, 120)), t, dur))
        t += dur
    if music.fluidsynth_available():
        return music.render_notes(notes, sr, duration=length + 0.5)
    out = np.zeros(int((length + 0.5) * sr), np.float32)
    for n in notes:
        x = music.additive_note(n.pitch, sr, rng=rng, clip_s=n.duration + 0.2, hold_s=n.duration)
        i = int(n.start * sr)
        out[i:i + len(x)] += x[:len(out) - i] * 0.3
    return out


def make_clip(index: int, config: GeneralConfig,
              speakers: List[speech.Speaker]) -> Tuple[np.ndarray, List[str]]:
    """Clip ``index`` of the corpus: float32 audio and its sorted labels."""
    rng = np.random.default_rng([config.seed, index])
    sr = config.sample_rate
    seconds = float(rng.uniform(config.min_seconds, config.max_seconds))
    n = int(seconds * sr)
    fg = np.zeros(n, np.float32)
    labels = set()
    kinds = ["speech", "music", "events"]
    chosen = [] if rng.random() < 0.1 else list(rng.choice(kinds, size=int(rng.integers(1, 3)),
                                                            replace=False))
    for kind in chosen:
        if kind == "speech":
            x = _speech(rng, sr, speakers)
            labels.add("speech")
        elif kind == "music":
            x = _music(rng, sr, seconds)
            labels.add("music")
        else:
            x = np.zeros(n, np.float32)
            for _ in range(int(rng.integers(1, 5))):
                name = str(rng.choice(sounds.list_sound_classes()))
                ev = sounds.synthesize(name, rng, sr)[:n]
                i = int(rng.integers(0, max(1, n - len(ev))))
                x[i:i + len(ev)] += ev
                labels.add(name)
        x = effects.fit_duration(np.asarray(x, np.float32), sr, seconds)
        x = effects.place_in_window(x, n, rng)[0] if len(x) < n else x[:n]
        fg += effects.set_level(x, sr, float(rng.uniform(-30, -18)))
    bg = sounds.ambience(rng, n, sr)
    if labels:
        snr = float(rng.uniform(0, 30))
        mix = sounds.mix_at_snr(fg, bg, snr)
        if snr < 10:
            labels.add("noise")
    else:
        mix = bg * effects.db_to_amp(float(rng.uniform(-40, -20)))
        labels.add("noise")
    if rng.random() < 0.3:
        mix = effects.reverb(mix, sr, rng)[0][:n]
    return effects.limit_peak(np.asarray(mix, np.float32)), sorted(labels)


def build_general(out: Path, config: GeneralConfig = GeneralConfig(), *,
                  progress: bool = True, speakers: Optional[List[speech.Speaker]] = None) -> Path:
    """Write the corpus as the HEAR task ``OUT/<task_name>-v1-full`` and return its path."""
    from tqdm import tqdm

    speakers = speakers or speech.list_speakers(voices=list(speech.ENGLISH_VOICES))
    if not speakers:
        raise RuntimeError("no speech engine installed (espeak-ng or Festival)")
    bounds = np.cumsum(config.splits) / sum(config.splits) * config.n_clips
    with TaskWriter(out, task_name=config.task_name, embedding_type=SCENE,
                    prediction_type=MULTILABEL, sample_duration=None, evaluation=["mAP"],
                    sample_rate=config.sample_rate) as w:
        for i in tqdm(range(config.n_clips), desc="general corpus", disable=not progress):
            audio, labels = make_clip(i, config, speakers)
            split = ("train", "valid", "test")[int(np.searchsorted(bounds, i, side="right"))]
            w.add(split, f"general{i:05d}", audio, labels)
    return w.path
