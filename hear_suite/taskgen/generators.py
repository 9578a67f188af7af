"""Generators of HEAR evaluation tasks, one function per task family.

Every generator has the signature ``gen(root, *, scale, seed, sample_rate, **options) -> Path``
and writes one task directory under ``root`` with :class:`hear_suite.tasks.TaskWriter`
(format: ``../shared/specs/hear.md``). ``scale`` multiplies the number of clips (1.0 = the demo
size); ``seed`` fixes everything: the same arguments give byte-identical files. Random numbers
come from ``numpy.random.default_rng([seed, crc32(task_name), ...])`` streams, so tasks of a
suite are independent of each other and of the order they are made in.

Sources (``hear_suite.corpora``): spoken words from espeak-ng voices (``speech``), General MIDI
notes from FluidSynth or a numpy additive synth (``music``), synthetic environmental sounds and
ambiences (``sounds``); noise, reverberation, levels and placement from ``effects``.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hear_suite.corpora import effects, music, sounds
from hear_suite.tasks import EVENT, MULTICLASS, MULTILABEL, SCENE, TaskWriter, fold_names
from hear_suite.version import __version__

# Speech Commands' ten command words (KW-MLP was pretrained on real recordings of them).
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# Event classes: short, distinct sources (the remaining sound classes are textures or near-duplicates).
EVENT_CLASSES = ("alarm", "bark", "bell", "chirp", "cough", "knock", "siren", "whistle")
PITCH_RANGE = (48, 72)  # MIDI C3..B4: 24 contiguous pitches, two-digit labels (see _pitch_labels)


def _rng(seed: int, task_name: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task_name.encode()), *keys])


def _count(base: float, scale: float, minimum: int = 1) -> int:
    return max(minimum, int(round(base * scale)))


def _writer(root: Path, task_name: str, *, scale: float, seed: int, sample_rate: int,
            options: Dict, **kwargs) -> TaskWriter:
    extra = {"generator": {"name": task_name, "scale": scale, "seed": seed,
                           "options": options, "hear_suite_version": __version__}}
    return TaskWriter(root, task_name=task_name, version="v1", mode="full",
                      sample_rate=sample_rate, extra_metadata=extra, **kwargs)


def _split_pool(items: Sequence, rng: np.random.Generator,
                fractions: Tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Dict[str, list]:
    """Disjoint train/valid/test subsets of ``items`` (shuffled), each non-empty."""
    order = [items[i] for i in rng.permutation(len(items))]
    n_valid = max(1, int(round(len(order) * fractions[1])))
    n_test = max(1, int(round(len(order) * fractions[2])))
    return {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
            "train": order[n_valid + n_test:]}


def _background(rng: np.random.Generator, signal: np.ndarray, sample_rate: int,
                snr_db: Tuple[float, float]) -> np.ndarray:
    bg = sounds.ambience(rng, len(signal), sample_rate)
    return effects.limit_peak(sounds.mix_at_snr(signal, bg, rng.uniform(*snr_db)))


# ---------------------------------------------------------------------------------------------
# scene: spoken words (espeak-ng)
# ---------------------------------------------------------------------------------------------

def spoken_words(root: Path, *, scale: float, seed: int, sample_rate: int,
                 words: Sequence[str] = COMMAND_WORDS, per_word: Tuple[int, int, int] = (40, 10, 10),
                 task_name: str = "gen_spoken_words") -> Path:
    """Multiclass scene (``top1_acc``): 1 s clips of one word each, Speech Commands style.

    Speakers are espeak-ng voices x variants (English accents and other languages' voices
    speaking English), disjoint between train, valid and test. Each clip: random pitch and rate,
    level -30..-15 dBFS, random position in the second, reverberation one time in three, noise
    (white/pink/brown) at 5-30 dB SNR. ``per_word``: clips per word in train/valid/test at scale 1.
    """
    from hear_suite.corpora import speech
    from hear_suite.corpora.tools import require_tool

    require_tool("espeak-ng")
    speakers = speech.list_speakers(engines=(speech.ESPEAK,))
    pools = _split_pool(speakers, _rng(seed, task_name, 0), (0.7, 0.15, 0.15))
    options = {"words": list(words), "per_word": list(per_word)}
    n = int(sample_rate * 1.0)
    with _writer(root, task_name, scale=scale, seed=seed, sample_rate=sample_rate, options=options,
                 embedding_type=SCENE, prediction_type=MULTICLASS, sample_duration=1.0,
                 evaluation=["top1_acc"]) as w:
        for s, split in enumerate(("train", "valid", "test")):
            rng = _rng(seed, task_name, 1, s)
            items = [word for word in words for _ in range(_count(per_word[s], scale))]
            for i, k in enumerate(rng.permutation(len(items))):
                word = items[k]
                speaker = pools[split][int(rng.integers(len(pools[split])))]
                audio = speech.speak(word, speaker, sample_rate=sample_rate, rng=rng)
                audio = effects.trim_silence(audio, sample_rate)
                audio = effects.fit_duration(audio, sample_rate, 0.95)
                audio = effects.set_level(audio, sample_rate, rng.uniform(-30.0, -15.0))
                if rng.random() < 1 / 3:
                    audio, _ = effects.reverb(audio, sample_rate, rng, max_reverberance=60.0)
                audio, _ = effects.place_in_window(audio, n, rng, jitter=0.8)
                color = effects.NOISE_COLORS[int(rng.integers(3))]
                audio = effects.add_noise(audio, rng.uniform(5.0, 30.0), rng, color=color,
                                          sample_rate=sample_rate)
                w.add(split, f"{split}_{i:05d}", effects.limit_peak(audio), [word])
    return w.path


# ---------------------------------------------------------------------------------------------
# scene: pitch of isolated notes (NSynth style)
# ---------------------------------------------------------------------------------------------

def _pitch_labels(lo: int, hi: int) -> List[str]:
    # chroma_acc compares label *indices* modulo 12, and the vocabulary is sorted as strings:
    # contiguous pitches with the same number of digits keep index = pitch - lo.
    if not (10 <= lo < hi <= 100):
        raise ValueError(f"pitch range must lie within MIDI 10..99, got {lo}..{hi - 1}")
    return [str(p) for p in range(lo, hi)]


def instrument_pitch(root: Path, *, scale: float, seed: int, sample_rate: int,
                     source: str = "fluidsynth", pitch_range: Tuple[int, int] = PITCH_RANGE,
                     per_pitch: Tuple[int, int, int] = (8, 2, 2),
                     task_name: Optional[str] = None) -> Path:
    """Multiclass scene (``pitch_acc``, ``chroma_acc``): 4 s notes held 3 s, label = MIDI pitch.

    ``source="fluidsynth"``: General MIDI melodic programs 0-111 through FluidSynth, programs
    disjoint between splits (as NSynth's instruments are), random velocity. ``"additive"``: the
    numpy synth of :func:`hear_suite.corpora.music.additive_note`, one random timbre per
    "instrument" id, ids disjoint between splits. Every pitch of ``pitch_range`` (half-open) is in
    the vocabulary, ``per_pitch`` notes of each per split at scale 1.
    """
    if source not in ("fluidsynth", "additive"):
        raise ValueError(f"source must be 'fluidsynth' or 'additive', got {source!r}")
    task_name = task_name or ("gen_instrument_pitch" if source == "fluidsynth" else "gen_synth_pitch")
    labels = _pitch_labels(*pitch_range)
    if source == "fluidsynth" and not music.fluidsynth_available():
        raise RuntimeError("the fluidsynth pitch task needs `fluidsynth` and a GM SoundFont "
                           "(apt-get install fluidsynth fluid-soundfont-gm); or use source='additive'")
    instruments = list(music.MELODIC_PROGRAMS) if source == "fluidsynth" else list(range(1000, 1100))
    pools = _split_pool(instruments, _rng(seed, task_name, 0))
    options = {"source": source, "pitch_range": list(pitch_range), "per_pitch": list(per_pitch)}
    with _writer(root, task_name, scale=scale, seed=seed, sample_rate=sample_rate, options=options,
                 embedding_type=SCENE, prediction_type=MULTICLASS, sample_duration=4.0,
                 evaluation=["pitch_acc", "chroma_acc"], labels=labels) as w:
        for s, split in enumerate(("train", "valid", "test")):
            rng = _rng(seed, task_name, 1, s)
            pitches = [p for p in range(*pitch_range) for _ in range(_count(per_pitch[s], scale))]
            pitches = [pitches[k] for k in rng.permutation(len(pitches))]
            insts = [pools[split][int(rng.integers(len(pools[split])))] for _ in pitches]
            velocities = [int(rng.choice([50, 75, 100, 127])) for _ in pitches]
            if source == "fluidsynth":
                clips = music.render_isolated_notes(list(zip(insts, pitches, velocities)), sample_rate)
                for i, clip in enumerate(clips):      # a program silent at this pitch: try others
                    tries = 0
                    while np.abs(clip).max() < 1e-3 and tries < len(pools[split]):
                        insts[i] = pools[split][(pools[split].index(insts[i]) + 1) % len(pools[split])]
                        clip = music.render_isolated_notes([(insts[i], pitches[i], velocities[i])],
                                                           sample_rate)[0]
                        tries += 1
                    clips[i] = clip
            else:
                clips = [music.additive_note(p, sample_rate, rng=np.random.default_rng([seed, inst]))
                         * (v / 127) for p, inst, v in zip(pitches, insts, velocities)]
            for i, (pitch, clip) in enumerate(zip(pitches, clips)):
                w.add(split, f"{split}_{i:05d}", clip, [str(pitch)])
    return w.path


# ---------------------------------------------------------------------------------------------
# scene: single sound classes (ESC-50 style), train/valid/test or k-fold
# ---------------------------------------------------------------------------------------------

def sound_classes(root: Path, *, scale: float, seed: int, sample_rate: int,
                  classes: Sequence[str] = tuple(sounds.list_sound_classes()),
                  nfolds: Optional[int] = None, per_class: float = 24, clip_s: float = 2.0,
                  task_name: Optional[str] = None) -> Path:
    """Multiclass scene (``top1_acc``): ``clip_s`` s clips of one synthetic sound (random
    position) over ambience at 5-30 dB SNR.

    ``nfolds=None``: train/valid/test with ``per_class`` clips per class in train and a third
    of that in valid and test. ``nfolds=k``: ``new_split_kfold`` with ``per_class / 4`` clips per
    class per fold (HEAR's k-fold evaluation: test fold i, valid fold i+1, train the rest).
    """
    kfold = nfolds is not None
    task_name = task_name or (f"gen_sound_classes_{nfolds}fold" if kfold else "gen_sound_classes")
    splits = fold_names(nfolds) if kfold else ["train", "valid", "test"]
    counts = ([_count(per_class / 4, scale)] * nfolds if kfold else
              [_count(per_class, scale), _count(per_class / 3, scale), _count(per_class / 3, scale)])
    n = int(round(clip_s * sample_rate))
    options = {"classes": list(classes), "nfolds": nfolds, "per_class": per_class, "clip_s": clip_s}
    kwargs = {"split_mode": "new_split_kfold", "nfolds": nfolds} if kfold else {}
    with _writer(root, task_name, scale=scale, seed=seed, sample_rate=sample_rate, options=options,
                 embedding_type=SCENE, prediction_type=MULTICLASS, sample_duration=clip_s,
                 evaluation=["top1_acc"], **kwargs) as w:
        for s, split in enumerate(splits):
            rng = _rng(seed, task_name, 1, s)
            items = [c for c in classes for _ in range(counts[s])]
            for i, k in enumerate(rng.permutation(len(items))):
                x = sounds.synthesize(items[k], rng, sample_rate)
                x, _ = effects.place_in_window(x, n, rng)
                w.add(split, f"{split}_{i:05d}", _background(rng, x, sample_rate, (5.0, 30.0)),
                      [items[k]])
    return w.path


# ---------------------------------------------------------------------------------------------
# scene, multilabel: mixtures of several sources
# ---------------------------------------------------------------------------------------------

def sound_mixtures(root: Path, *, scale: float, seed: int, sample_rate: int,
                   classes: Sequence[str] = tuple(sounds.list_sound_classes()),
                   clips: Tuple[int, int, int] = (300, 100, 100), max_sources: int = 3,
                   clip_s: float = 3.0, task_name: str = "gen_sound_mixtures") -> Path:
    """Multilabel scene (``mAP``, ``d_prime``, ``aucroc``): ``clip_s`` s mixtures of 1 to
    ``max_sources`` different sound classes at random positions and levels (+-6 dB) over
    ambience at 10-30 dB SNR; labels = the classes present. Classes are dealt from a shuffled
    deck so every class occurs about equally often in every split (AUC needs positives)."""
    n = int(round(clip_s * sample_rate))
    options = {"classes": list(classes), "clips": list(clips), "max_sources": max_sources,
               "clip_s": clip_s}
    with _writer(root, task_name, scale=scale, seed=seed, sample_rate=sample_rate, options=options,
                 embedding_type=SCENE, prediction_type=MULTILABEL, sample_duration=clip_s,
                 evaluation=["mAP", "d_prime", "aucroc"], labels=classes) as w:
        for s, split in enumerate(("train", "valid", "test")):
            rng = _rng(seed, task_name, 1, s)
            deck: List[str] = []
            for i in range(_count(clips[s], scale, minimum=2)):
                k = int(rng.integers(1, max_sources + 1))
                chosen: List[str] = []
                while len(chosen) < k:
                    if not deck:
                        deck = [classes[i] for i in rng.permutation(len(classes))]
                    c = deck.pop()
                    if c not in chosen:
                        chosen.append(c)
                mix = np.zeros(n, np.float32)
                for c in chosen:
                    x = sounds.synthesize(c, rng, sample_rate) * effects.db_to_amp(rng.uniform(-6, 6))
                    mix += effects.place_in_window(x, n, rng)[0]
                w.add(split, f"{split}_{i:05d}", _background(rng, mix, sample_rate, (10.0, 30.0)),
                      sorted(chosen))
    return w.path


# ---------------------------------------------------------------------------------------------
# event: sound events at random onsets in noisy backgrounds (DCASE 2016 task 2 style)
# ---------------------------------------------------------------------------------------------

def sound_events(root: Path, *, scale: float, seed: int, sample_rate: int,
                 classes: Sequence[str] = EVENT_CLASSES, clips: Tuple[int, int, int] = (24, 8, 8),
                 duration_s: Tuple[float, float] = (10.0, 30.0), gap_s: Tuple[float, float] = (0.3, 3.0),
                 snr_db: Tuple[float, float] = (0.0, 20.0), task_name: str = "gen_sound_events") -> Path:
    """Event task (``event_onset_200ms_fms``, ``segment_1s_er``): scenes of random length in
    ``duration_s`` (0.1 s steps, so ``sample_duration`` is null) of ambience with
    non-overlapping events separated by ``gap_s``. Each event's label spans its audible extent
    (silence trimmed at -40 dB), in ms; its level is ``snr_db`` above the background."""
    options = {"classes": list(classes), "clips": list(clips), "duration_s": list(duration_s),
               "gap_s": list(gap_s), "snr_db": list(snr_db)}
    params = {"event_postprocessing_grid": {"median_filter_ms": [100, 250], "min_duration": [60, 125]}}
    with _writer(root, task_name, scale=scale, seed=seed, sample_rate=sample_rate, options=options,
                 embedding_type=EVENT, prediction_type=MULTILABEL, sample_duration=None,
                 evaluation=["event_onset_200ms_fms", "segment_1s_er"],
                 evaluation_params=params, labels=classes) as w:
        for s, split in enumerate(("train", "valid", "test")):
            rng = _rng(seed, task_name, 1, s)
            for i in range(_count(clips[s], scale, minimum=2)):
                n = int(round(rng.uniform(*duration_s) * 10)) * sample_rate // 10
                bg = sounds.ambience(rng, n, sample_rate) * 0.05
                bg_db = effects.rms_db(bg)
                audio, events = bg.astype(np.float32), []
                t = int(rng.uniform(0.2, gap_s[1]) * sample_rate)
                while True:
                    label = classes[int(rng.integers(len(classes)))]
                    x = effects.trim_silence(sounds.synthesize(label, rng, sample_rate), sample_rate,
                                             pad_ms=0.0)
                    if t + len(x) > n - int(0.2 * sample_rate):
                        break
                    x = effects.gain(x, bg_db + rng.uniform(*snr_db) - effects.rms_db(x))
                    audio[t:t + len(x)] += x
                    events.append({"label": label, "start": round(1000 * t / sample_rate, 3),
                                   "end": round(1000 * (t + len(x)) / sample_rate, 3)})
                    t += len(x) + int(rng.uniform(*gap_s) * sample_rate)
                w.add(split, f"{split}_{i:05d}", effects.limit_peak(audio), events)
    return w.path
