"""Miniature replicas of the 20 HEAR 2021 task directories (``make-tasks --suite hear2021``).

Each replica has the real directory's name, ``task_metadata.json`` (the task config as
hear-preprocess writes it, download keys left out), label vocabulary, split names or folds and
clip length; only the number of clips is smaller and the audio is synthetic
(:mod:`~hear_suite.taskgen.hear2021.audio`, :mod:`~hear_suite.taskgen.hear2021.voice`).
The facts and their sources are in ``eval_configs/hear2021.md``; :data:`TASKS` restates them.

Two keys are hear_suite's own: ``generator`` (what wrote the replica: scale, seed, options) and
``sample_rate`` (the rate the audio was synthesised at). Label names the sources do not give
(VoxLingua languages, vocal-imitation references, FSD50K classes) are placeholders of the right
number.

Sizes (``counts``) are clips per split or fold at scale 1: every label of a vocabulary of up to
about a hundred labels is in every split/fold, the others (FSD50K, vocal imitations) are in
every split about once or twice. ``--scale`` multiplies the counts (at least 2 clips per
split/fold, 1 for the 120 s event tasks); durations stay real unless ``max_seconds`` caps them
(tests only: the metadata then says the capped duration).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hear_suite.taskgen.hear2021 import audio as ra
from hear_suite.taskgen.hear2021 import voice as rv
from hear_suite.tasks import EVENT, MULTICLASS, MULTILABEL, SCENE, TaskWriter, fold_names
from hear_suite.version import __version__

TVT, PK, NK = "trainvaltest", "presplit_kfold", "new_split_kfold"
SCENE_METRICS = ("top1_acc", "mAP", "d_prime", "aucroc")  # the secret scene tasks' list in P

# Vocabularies. [D] = the dataset's documentation; [P] = hear-preprocess's label code.
MIDI = tuple(str(p) for p in range(21, 109))  # NSynth and MAESTRO pitches 21-108 [P]
DCASE2016 = ("clearthroat", "cough", "doorslam", "drawer", "keyboard", "keysDrop", "knock",
             "laughter", "pageturn", "phone", "speech")  # [D]
SPEECH_COMMANDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
                   "_unknown_", "_silence_")  # [P]
ESC50 = ("dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
         "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops",
         "wind", "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing",
         "clapping", "breathing", "coughing", "footsteps", "laughing", "brushing_teeth",
         "snoring", "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing",
         "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm",
         "clock_tick", "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine",
         "train", "church_bells", "airplane", "fireworks", "hand_saw")  # ESC-50 categories [D]
GTZAN = tuple(ra.GENRES)  # [D]
CREMA_D = tuple(rv.EMOTIONS)  # [D]


@dataclass(frozen=True)
class ReplicaTask:
    """One HEAR 2021 task directory: its metadata facts, vocabulary and replica layout."""

    task_name: str
    version: str
    mode: str
    embedding_type: str
    prediction_type: str
    split_mode: str
    sample_duration: Optional[float]
    evaluation: Tuple[str, ...]
    labels: Tuple[str, ...]
    counts: Tuple[int, ...]         # clips per split (train, valid, test) or per fold, scale 1
    family: str                     # key of FAMILIES: how a clip is rendered
    nfolds: Optional[int] = None
    source: str = ""                # hear-preprocess file holding the config
    config: Mapping[str, Any] = field(default_factory=dict)  # further keys of the config
    numeric_labels: bool = False    # vocabulary sorted as numbers (pandas reads them as ints)
    audio_key: str = ""             # tasks with the same key share their audio (mridangam)
    real_clips: int = 0             # clips of the real task (hearbenchmark.com task table)
    mean_seconds: Optional[float] = None  # mean real clip length when sample_duration is null

    @property
    def real_audio_seconds(self) -> float:
        """Audio in the real task directory (one sample rate), in seconds."""
        return self.real_clips * float(self.sample_duration or self.mean_seconds or 0.0)

    @property
    def dir_name(self) -> str:
        return f"{self.task_name}-{self.version}-{self.mode}"

    @property
    def splits(self) -> List[str]:
        return fold_names(self.nfolds) if self.nfolds else ["train", "valid", "test"]

    def metadata(self) -> Dict[str, Any]:
        """``task_metadata.json`` as hear-preprocess writes it for this mode (download keys
        and its work directory left out)."""
        meta: Dict[str, Any] = {
            "task_name": self.task_name, "version": self.version,
            "embedding_type": self.embedding_type, "prediction_type": self.prediction_type,
            "split_mode": self.split_mode, "sample_duration": self.sample_duration,
            "evaluation": list(self.evaluation)}
        if self.nfolds:
            meta["nfolds"] = self.nfolds
        meta.update(self.config)
        meta.update({"mode": self.mode, "splits": self.splits})
        return meta


def _task(name: str, version: str, mode: str, family: str, labels: Sequence[str],
          counts: Sequence[int], *, emb: str = SCENE, pred: str = MULTICLASS, split: str = NK,
          dur: Optional[float], evaluation: Sequence[str] = SCENE_METRICS,
          nfolds: Optional[int] = None, source: str = "", **kwargs) -> ReplicaTask:
    if split != TVT and len(counts) != nfolds:
        raise ValueError(f"{name}: {len(counts)} fold counts for {nfolds} folds")
    config = dict(kwargs.pop("config", {}))
    config.setdefault("default_mode", mode)
    if split == TVT:
        config.setdefault("max_task_duration_by_split", {"train": None, "valid": None, "test": None})
    else:
        config.setdefault("max_task_duration_by_fold", None)
    return ReplicaTask(name, version, mode, emb, pred, split, dur, tuple(evaluation), tuple(labels),
                       tuple(counts), family, nfolds, source, config, **kwargs)


_SECRET = "hearpreprocess/secrettasks/hearsecrettasks/"
_5H = {"train": 3600 * 5 * 80 / 90, "valid": 3600 * 5 * 10 / 90, "test": 3600 * 5 * 10 / 90}
_50H = {k: v * 10 for k, v in _5H.items()}
_BEEHIVE = dict(family="beehive", labels=("NOQUEEN", "QUEEN"), counts=(2, 2, 2), split=TVT,
                dur=600, evaluation=("aucroc", "mAP", "d_prime", "top1_acc"),
                config={"default_mode": "5h"}, real_clips=576)  # each directory: both hives
_MRIDANGAM = dict(counts=(60,) * 5, dur=0.81, nfolds=5, audio_key="mridangam", real_clips=6977)

TASKS: Dict[str, ReplicaTask] = {t.dir_name: t for t in (
    _task("dcase2016_task2", "hear2021", "full", "office_events", DCASE2016, (6, 2, 2),
          emb=EVENT, pred=MULTILABEL, split=TVT, dur=120.0, real_clips=72,
          evaluation=("event_onset_200ms_fms", "segment_1s_er"),
          source="hearpreprocess/dcase2016_task2.py",
          config={"split_percentage": {"valid": 20, "test": 20, "train": 60}}),
    _task("nsynth_pitch", "v2.2.3", "5h", "nsynth", MIDI, (176, 88, 88), split=TVT, dur=4.0,
          real_clips=5000, evaluation=("pitch_acc", "chroma_acc"), numeric_labels=True,
          source="hearpreprocess/nsynth_pitch.py",
          config={"pitch_range_min": 21, "pitch_range_max": 108, "default_mode": "5h",
                  "max_task_duration_by_split": _5H}),
    _task("nsynth_pitch", "v2.2.3", "50h", "nsynth", MIDI, (352, 88, 88), split=TVT, dur=4.0,
          real_clips=49060, evaluation=("pitch_acc", "chroma_acc"), numeric_labels=True,
          source="hearpreprocess/nsynth_pitch.py",
          config={"pitch_range_min": 21, "pitch_range_max": 108, "default_mode": "5h",
                  "max_task_duration_by_split": _50H}),
    _task("speech_commands", "v0.0.2", "5h", "words", SPEECH_COMMANDS, (240, 60, 60), split=TVT,
          dur=1.0, real_clips=22890, evaluation=("top1_acc",),
          source="hearpreprocess/speech_commands.py",
          config={"default_mode": "5h", "max_task_duration_by_split": {**_5H, "test": None}}),
    _task("speech_commands", "v0.0.2", "full", "words", SPEECH_COMMANDS, (480, 60, 60),
          split=TVT, dur=1.0, real_clips=100503, evaluation=("top1_acc",),
          source="hearpreprocess/speech_commands.py", config={"default_mode": "5h"}),
    _task("beehive_states_fold0", "v2", "full", source=_SECRET + "beehive_states_fold0.py",
          **_BEEHIVE),
    _task("beehive_states_fold1", "v2", "full", source=_SECRET + "beehive_states_fold1.py",
          **_BEEHIVE),
    _task("beijing_opera", "v1.0-hear2021", "full", "opera", tuple(ra.OPERA), (8,) * 5,
          dur=4.77, nfolds=5, real_clips=236, source=_SECRET + "beijing_opera.py"),
    _task("tfds_crema_d", "1.0.0", "full", "emotions", CREMA_D, (12,) * 5, dur=5, nfolds=5,
          real_clips=7438, source=_SECRET + "tfds_crema_d.py",
          config={"tfds_task_name": "crema_d", "tfds_task_version": "1.0.0",
                  "extract_splits": ["train", "test", "valid"]}),
    _task("esc50", "v2.0.0", "full", "sounds", ESC50, (50,) * 5, split=PK, dur=5, nfolds=5,
          real_clips=2000, source=_SECRET + "esc50.py"),
    _task("fsd50k", "v1.0", "full", "sound_mixtures", tuple(f"fsd{i:03d}" for i in range(200)),
          (140, 70, 70), pred=MULTILABEL, split=TVT, dur=None,
          evaluation=("mAP", "d_prime", "aucroc", "top1_acc"), source=_SECRET + "fsd50k.py",
          real_clips=51185, mean_seconds=7.6),
    _task("gunshot_triangulation", "v1.0", "full", "gunshots", ("mic1", "mic2", "mic3", "mic4"),
          (16,) + (12,) * 6, dur=1.5, nfolds=7, real_clips=88,
          source=_SECRET + "gunshot_triangulation.py"),
    _task("tfds_gtzan", "1.0.0", "full", "genres", GTZAN, (10,) * 10, dur=30.0, nfolds=10,
          real_clips=1000, source=_SECRET + "tfds_gtzan.py",
          config={"tfds_task_name": "gtzan", "tfds_task_version": "1.0.0",
                  "extract_splits": ["train"]}),
    _task("tfds_gtzan_music_speech", "1.0.0", "full", "music_speech", ("music", "speech"),
          (2,) * 10, dur=30.0, nfolds=10, real_clips=128,
          source=_SECRET + "tfds_gtzan_music_speech.py",
          config={"tfds_task_name": "gtzan_music_speech", "tfds_task_version": "1.0.0",
                  "extract_splits": ["train"]}),
    _task("libricount", "v1.0.0-hear2021", "full", "talkers", tuple(str(k) for k in range(11)),
          (22,) * 5, dur=5.0, nfolds=5, real_clips=5720, numeric_labels=True,
          source=_SECRET + "libricount.py"),
    _task("maestro", "v3.0.0", "5h", "piano", MIDI, (2,) * 5, emb=EVENT, pred=MULTILABEL,
          dur=120.0, nfolds=5, real_clips=185, numeric_labels=True, source=_SECRET + "maestro.py",
          evaluation=("event_onset_50ms_fms", "event_onset_offset_50ms_20perc_fms"),
          config={"use_scoring_for_early_stopping": False,
                  "evaluation_params": {
                      "event_postprocessing_grid": {"median_filter_ms": [150],
                                                    "min_duration": [50]},
                      "task_specific_param_grid": {"max_epochs": [50],
                                                   "check_val_every_n_epoch": [1]}},
                  "default_mode": "5h", "max_task_duration_by_fold": 3600 * 5 / 4}),
    _task("mridangam_stroke", "v1.5", "full", "mridangam", tuple(ra.MRIDANGAM),
          source=_SECRET + "mridangam_stroke.py", **_MRIDANGAM),
    _task("mridangam_tonic", "v1.5", "full", "mridangam", tuple(ra.TONICS),
          source=_SECRET + "mridangam_tonic.py", **_MRIDANGAM),
    _task("vocal_imitation", "v1.1.3", "full", "imitations",
          tuple(f"ref{i:03d}" for i in range(302)), (201, 201, 201), dur=11.26, nfolds=3,
          evaluation=("mAP", "d_prime", "aucroc", "top1_acc"), real_clips=5601,
          source=_SECRET + "vocal_imitation.py"),
    _task("vox_lingua_top10", "hear2021", "full", "languages",
          tuple(f"lang{i}" for i in range(10)), (20,) * 5, dur=18.64, nfolds=5, real_clips=972,
          source=_SECRET + "vox_lingua_top10.py"),
)}


# ---------------------------------------------------------------------------------------------
# planning: which clip gets which label and length
# ---------------------------------------------------------------------------------------------

@dataclass
class Clip:
    split: str
    index: int           # position in the split
    content: Any         # what the family renders (a label, labels, a pair, a pitch sequence)
    seconds: float       # length of the clip


def _rng(seed: int, key: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode()), *more])


def scaled_counts(task: ReplicaTask, scale: float) -> List[int]:
    """Clips per split/fold at ``scale``: at least 2 (1 for event tasks, whose clips are 120 s)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    minimum = 1 if task.embedding_type == EVENT else 2
    return [max(minimum, int(round(c * scale))) for c in task.counts]


def clip_seconds(task: ReplicaTask, max_seconds: Optional[float]) -> Optional[float]:
    """The task's ``sample_duration``, capped at ``max_seconds`` when given."""
    if task.sample_duration is None or max_seconds is None:
        return task.sample_duration
    return min(float(task.sample_duration), float(max_seconds))


def _deck(items: Sequence, rng: np.random.Generator):
    """Items in shuffled passes, forever: any run of ``len(items)`` consecutive draws that
    starts a pass holds each item once."""
    while True:
        for i in rng.permutation(len(items)):
            yield items[i]


def label_sets(labels: Sequence[str], count: int, rng: np.random.Generator) -> List[List[str]]:
    """``count`` sets of 1-4 labels for a multilabel split, dealt from a fresh shuffled deck;
    sets are topped up (to at most 4) until every label is dealt once when ``4 * count`` allows,
    so that each label has positives in the split (d' and ROC AUC need them)."""
    sizes = rng.integers(1, 5, size=count)
    i = 0
    while sizes.sum() < len(labels) and (sizes < 4).any():
        sizes[i % count] += sizes[i % count] < 4
        i += 1
    deck = _deck(labels, rng)
    return [sorted({next(deck) for _ in range(int(k))}) for k in sizes]


def plan(task: ReplicaTask, *, scale: float, seed: int,
         max_seconds: Optional[float] = None) -> List[Clip]:
    """Every clip of the replica, in split order. Labels are dealt from one deck over the whole
    task (so each split of at least a vocabulary's size holds every label); pure function of the
    arguments, and the same for tasks with the same ``audio_key``."""
    counts = scaled_counts(task, scale)
    rng = _rng(seed, task.audio_key or task.dir_name, 0)
    seconds = clip_seconds(task, max_seconds)
    clips: List[Clip] = []
    if task.family == "mridangam":  # stroke x tonic pairs, both directories the same audio
        content = _deck([(s, t) for s in ra.MRIDANGAM for t in ra.TONICS], rng)
    elif task.family == "gunshots":  # 4 microphones per shot: counts are 4 x shots
        content = iter([])
    elif task.family == "sound_mixtures":  # label sets drawn per split, below
        content = iter([])
    else:
        content = _deck(task.labels, rng)
    for split, count in zip(task.splits, counts):
        if task.family == "gunshots":
            shots = max(1, count // 4)
            clips += [Clip(split, 4 * s + m, (s, f"mic{m + 1}"), seconds)
                      for s in range(shots) for m in range(4)]
            continue
        if task.family == "sound_mixtures":
            sets = label_sets(task.labels, count, rng)
            clips += [Clip(split, i, c, 0.0) for i, c in enumerate(sets)]
            continue
        for i in range(count):
            clips.append(Clip(split, i, next(content), seconds if seconds is not None else 0.0))
    if task.sample_duration is None:  # FSD50K: 0.3-30 s, log-uniform, both extremes present
        hi = 30.0 if max_seconds is None else min(30.0, float(max_seconds))
        for j, clip in enumerate(clips):
            clip.seconds = round(float(np.exp(rng.uniform(np.log(0.3), np.log(hi)))), 2)
        by_split: Dict[str, List[Clip]] = {}
        for clip in clips:
            by_split.setdefault(clip.split, []).append(clip)
        for split_clips in by_split.values():
            split_clips[0].seconds = 0.3
            split_clips[-1].seconds = hi
    return clips


# ---------------------------------------------------------------------------------------------
# rendering: one function per family, (clip, rng, sr) -> (audio, labels for the split file)
# ---------------------------------------------------------------------------------------------

def _n(clip: Clip, sr: int) -> int:
    return int(round(clip.seconds * sr))


def _office(clip, rng, sr, task):
    order = [task.labels[i] for i in rng.permutation(len(task.labels))]
    # start the scene with the dealt label, then the rest of a shuffled pass, cycled
    order.remove(clip.content)
    sound_for = {label: k for k, label in enumerate(task.labels)}
    return ra.event_scene([clip.content] + order, sound_for, len(task.labels), _n(clip, sr), rng, sr)


def _piano(clip, rng, sr, task):
    # a shuffled pass over all 88 pitches, cycled: a 120 s excerpt plays each a few times
    pitches = [int(task.labels[i]) for i in rng.permutation(len(task.labels))]
    return ra.piano_roll(pitches, _n(clip, sr), sr, rng)


def _nsynth(clip, rng, sr, task):
    # instruments (timbres) are disjoint between splits, as NSynth's are
    timbre = ra.random_timbre(_rng(0, clip.split, int(rng.integers(40))))
    velocity = float(rng.choice([25, 50, 75, 100, 127])) / 127
    return ra.nsynth_note(int(clip.content), timbre, velocity, sr, rng, clip_s=clip.seconds,
                          hold_s=0.75 * clip.seconds), [clip.content]


def _words(clip, rng, sr, task):
    n = _n(clip, sr)
    out = np.zeros(n, np.float32)
    if clip.content != "_silence_":
        phones = rv.pseudo_word(rng) if clip.content == "_unknown_" else rv.WORDS[clip.content]
        word = rv.speak(phones, rv.random_speaker(rng), sr, rng)[:n]
        ra.place(out, word, int(rng.integers(0, n - len(word) + 1)))
        return ra.mix_over(out, rng, sr, (10.0, 40.0)), [clip.content]
    noise = ra.room_tone(rng, n, sr) * np.float32(ra.db_to_amp(rng.uniform(-40, -10)))
    return noise.astype(np.float32), [clip.content]


def _emotions(clip, rng, sr, task):
    n = _n(clip, sr)
    out = np.zeros(n, np.float32)
    phrase = rv.speak(rv.sentence(int(rng.integers(12))), rv.random_speaker(rng), sr, rng,
                      rv.EMOTIONS[clip.content])[:n]
    ra.place(out, phrase, int(rng.integers(0, n - len(phrase) + 1)))
    return ra.mix_over(out, rng, sr, (20.0, 40.0)), [clip.content]


def _talkers(clip, rng, sr, task):
    n, k = _n(clip, sr), int(clip.content)
    out = np.zeros(n, np.float32)
    for _ in range(k):  # k people talking at once, at similar levels
        voice = rv.talk(n, sr, rng, speaker=rv.random_speaker(rng), language=rv.ENGLISH,
                        start_s=rng.uniform(0, 0.5))
        out += voice * np.float32(ra.db_to_amp(rng.uniform(-3, 3)))
    return ra.mix_over(out, rng, sr, (25.0, 40.0)) if k else \
        (ra.room_tone(rng, n, sr) * np.float32(0.01)), [clip.content]


def _languages(clip, rng, sr, task):
    language = rv.make_language(task.labels.index(clip.content))
    voice = rv.talk(_n(clip, sr), sr, rng, speaker=rv.random_speaker(rng), language=language,
                    start_s=rng.uniform(0, 1))
    return ra.mix_over(voice, rng, sr, (15.0, 40.0)), [clip.content]


def _music_speech(clip, rng, sr, task):
    n = _n(clip, sr)
    if clip.content == "music":
        genre = list(ra.GENRES)[int(rng.integers(len(ra.GENRES)))]
        return ra.genre_excerpt(genre, n, rng, sr), [clip.content]
    voices = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(1, 3))):  # a presenter, sometimes a guest
        voices += rv.talk(n, sr, rng, speaker=rv.random_speaker(rng), language=rv.ENGLISH,
                          start_s=rng.uniform(0, 2))
    return ra.mix_over(voices, rng, sr, (20.0, 40.0)), [clip.content]


def _gunshots(clip, rng, sr, task, seed=0):
    shot, mic = clip.content
    shot_rng = _rng(seed, f"{task.dir_name}/{clip.split}", shot)  # shared by the 4 microphones
    return ra.gunshot(int(mic[3:]) - 1, _n(clip, sr), rng, sr, shot_rng), [mic]


def _mridangam(clip, rng, sr, task):
    stroke, tonic = clip.content
    label = stroke if task.task_name == "mridangam_stroke" else tonic
    return ra.mridangam_stroke(stroke, tonic, _n(clip, sr), rng, sr), [label]


def _sounds(clip, rng, sr, task, snr_db=(10.0, 30.0)):
    labels = [clip.content] if isinstance(clip.content, str) else list(clip.content)
    audio = ra.labelled_clip([task.labels.index(x) for x in labels], len(task.labels),
                             _n(clip, sr), rng, sr, snr_db)
    return audio, labels


FAMILIES: Dict[str, Callable] = {
    "office_events": _office, "piano": _piano, "nsynth": _nsynth, "words": _words,
    "emotions": _emotions, "talkers": _talkers, "languages": _languages,
    "music_speech": _music_speech, "gunshots": _gunshots, "mridangam": _mridangam,
    "sounds": _sounds, "sound_mixtures": _sounds,
    "imitations": lambda c, rng, sr, t: _sounds(c, rng, sr, t, (15.0, 35.0)),
    "beehive": lambda c, rng, sr, t: (ra.beehive(c.content == "QUEEN", _n(c, sr), rng, sr),
                                      [c.content]),
    "opera": lambda c, rng, sr, t: (ra.opera_stroke(c.content, _n(c, sr), rng, sr), [c.content]),
    "genres": lambda c, rng, sr, t: (ra.genre_excerpt(c.content, _n(c, sr), rng, sr), [c.content]),
}


def write_task(root: Path, *, task: str, scale: float, seed: int, sample_rate: int,
               max_seconds: Optional[float] = None) -> Path:
    """Write the replica of task directory ``task`` (a key of :data:`TASKS`) under ``root``;
    returns its path. Same arguments, same bytes."""
    if task not in TASKS:
        raise ValueError(f"unknown HEAR 2021 task directory {task!r}; the replica has {sorted(TASKS)}")
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    spec = TASKS[task]
    meta = spec.metadata()
    meta["sample_duration"] = clip_seconds(spec, max_seconds)
    generator = {"name": "hear2021 replica", "scale": scale, "seed": seed,
                 "options": {"task": task, "max_seconds": max_seconds},
                 "hear_suite_version": __version__, "facts": "eval_configs/hear2021.md",
                 "source": f"hearbenchmark/hear-preprocess {spec.source}"}
    fixed = {"task_name", "version", "mode", "embedding_type", "prediction_type", "split_mode",
             "sample_duration", "evaluation", "splits", "nfolds"}
    writer = TaskWriter(root, task_name=spec.task_name, version=spec.version, mode=spec.mode,
                        embedding_type=spec.embedding_type, prediction_type=spec.prediction_type,
                        split_mode=spec.split_mode, sample_duration=meta["sample_duration"],
                        evaluation=spec.evaluation, sample_rate=sample_rate, nfolds=spec.nfolds,
                        labels=spec.labels, label_order="numeric" if spec.numeric_labels else "text",
                        extra_metadata={**{k: v for k, v in meta.items() if k not in fixed},
                                        "generator": generator})
    render = FAMILIES[spec.family]
    key = spec.audio_key or spec.dir_name
    with writer as w:
        for clip in plan(spec, scale=scale, seed=seed, max_seconds=max_seconds):
            rng = _rng(seed, key, 1 + spec.splits.index(clip.split), clip.index)
            if spec.family == "gunshots":
                audio, labels = _gunshots(clip, rng, sample_rate, spec, seed)
            else:
                audio, labels = render(clip, rng, sample_rate, spec)
            w.add(clip.split, f"{clip.split}_{clip.index:05d}", audio, labels)
    return w.path
