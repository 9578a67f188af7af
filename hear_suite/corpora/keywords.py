"""A synthetic keyword-spotting corpus of the 35 Speech Commands V2 words, as a HEAR scene task.

Each clip is one word spoken by one synthetic speaker (:mod:`hear_suite.corpora.speech`) as a
statement, a question or an exclamation, in a 1 s window: silence trimmed, time-stretched (pitch
kept) when longer than 0.9 s, placed at a random offset, sometimes reverberated, set to a random
level, mixed with white/pink/brown noise (sometimes mains hum) at a random SNR, peak-limited
(never clipped).

Speakers and splits. A speaker is ``(engine, voice, variant)``: an espeak-ng English accent or
another language's voice speaking English phonemes, with one of ~100 voice variants, plus the
two Festival voices; about 40 % of the espeak speakers get a female variant (espeak-ng has far
fewer female than male variants). Each speaker has its own habitual pitch and rate; every clip
varies around them. Splits are by speaker (about 70/15/15 of the espeak speakers, stratified between native
English accents and foreign accents): no valid or test speaker occurs in train, so accuracy
measures generalisation to unseen speakers. Festival offers only two voices, too few to spread
over three splits, so its speakers (each voice at three pitch presets) are all in train.

Determinism: the speaker draw and split come from ``seed`` alone; each clip's random numbers come
from ``(seed, speaker id, word, repetition)`` (not from its position or the worker that made
it), and clips are written in a fixed order, so one seed gives byte-identical files.

Files besides the HEAR ones (heareval reads only the files it knows):
``speakers.json`` (``{"<stem>.wav": speaker id}``) and ``corpus.json`` (configuration, speakers
per split with their traits, per-clip generation parameters).
"""
from __future__ import annotations

import multiprocessing
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from hear_suite.corpora import effects as fx
from hear_suite.corpora.speech import (ACCENT_VOICES, ENGLISH_VOICES, ESPEAK, ESPEAK_VARIANTS,
                                       FEMALE_VARIANTS, FESTIVAL, FESTIVAL_VOICES, Speaker, speak)
from hear_suite.corpora.tools import have_tool, require_tool
from hear_suite.tasks import TaskWriter, write_json_atomic

WORDS: Tuple[str, ...] = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
    "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
    "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
SPLITS = ("train", "valid", "test")
# Festival variants: label -> habitual pitch offset (semitones).
FESTIVAL_PRESETS: Dict[str, float] = {"low": -3.0, "mid": 0.0, "high": 3.0}


@dataclass(frozen=True)
class KeywordConfig:
    """Everything that defines a keyword corpus; the same config and seed give the same files.

    Size: ``(n_speakers + festival speakers) * len(words) * clips_per_speaker_word`` clips.
    """

    seed: int = 0
    words: Tuple[str, ...] = WORDS
    n_speakers: int = 90                 # espeak-ng speakers, split 70/15/15
    accent_fraction: float = 0.4         # share of them that are foreign-language voices
    female_fraction: float = 0.4         # share of them with a female voice variant
    festival: bool = True                # add the Festival voices (train only)
    clips_per_speaker_word: int = 1
    sample_rate: int = 16000
    duration: float = 1.0                # seconds per clip
    max_word: float = 0.9                # longer words are time-stretched to this (seconds)
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    # habitual traits per speaker, and per-clip variation around them
    speaker_pitch: Tuple[float, float] = (-4.0, 5.0)      # semitones
    speaker_speed: Tuple[float, float] = (0.65, 1.1)      # rate factor (espeak-ng is brisk)
    clip_pitch: float = 1.5                               # +- semitones
    clip_speed: float = 0.1                               # +- relative
    intonation: Tuple[str, ...] = ("", "", "?", "!")      # final punctuation, drawn per clip
    # room, level, noise
    p_reverb: float = 0.3
    level_db: Tuple[float, float] = (-32.0, -14.0)        # active speech RMS, dBFS
    snr_db: Tuple[float, float] = (5.0, 40.0)
    noise_colors: Tuple[str, ...] = ("white", "pink", "brown")
    p_hum: float = 0.1
    hum_db: Tuple[float, float] = (15.0, 35.0)            # below speech
    task_name: str = "keywords"
    version: str = "v1"

    def __post_init__(self) -> None:
        unknown = [w for w in self.words if not re.fullmatch(r"[a-z]+", w)]
        if unknown:
            raise ValueError(f"words must be lowercase ascii letters, got {unknown}")
        if len(set(self.words)) != len(self.words) or not self.words:
            raise ValueError("words must be distinct and non-empty")
        if self.n_speakers < 3:
            raise ValueError(f"n_speakers must be >= 3 (one per split at least), got {self.n_speakers}")
        if self.clips_per_speaker_word < 1:
            raise ValueError("clips_per_speaker_word must be >= 1")


@dataclass(frozen=True)
class SpeakerPlan:
    """A speaker with its split and habitual traits."""

    speaker: Speaker
    split: str
    pitch: float      # semitones
    speed: float      # rate factor

    @property
    def id(self) -> str:
        return self.speaker.id


@dataclass(frozen=True)
class ClipSpec:
    """Everything a worker needs to make one clip (a pure function of this)."""

    index: int
    stem: str
    word: str
    rep: int
    plan: SpeakerPlan
    config: KeywordConfig = field(repr=False)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """Generator seeded by ``seed`` and strings (CRC32, stable across runs and processes)."""
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


def plan_speakers(config: KeywordConfig) -> List[SpeakerPlan]:
    """Draw the speakers, their traits and their splits from ``config.seed``.

    espeak-ng speakers pair shuffled voices with shuffled variants so that variants repeat as
    little as possible; each group (English accents, foreign accents) is shuffled and
    interleaved in proportion before the valid/test/train cut, which stratifies the split.
    """
    require_tool("espeak-ng")
    rng = _rng(config.seed, "speakers")
    n_accent = int(round(config.n_speakers * config.accent_fraction))
    n_english = config.n_speakers - n_accent
    female = [v for v in ESPEAK_VARIANTS if v in FEMALE_VARIANTS]
    male = [""] + [v for v in ESPEAK_VARIANTS if v not in FEMALE_VARIANTS]
    female = [female[i] for i in rng.permutation(len(female))]
    male = [male[i] for i in rng.permutation(len(male))]
    # ~female_fraction of the sequence is female (espeak-ng has 18 female variants to 84 male)
    f = config.female_fraction
    variants, n_f = [], 0
    for i in range(len(female) + len(male)):
        if int((i + 1) * f) > int(i * f):
            variants.append(female[n_f % len(female)])
            n_f += 1
        else:
            variants.append(male[(i - n_f) % len(male)])
    groups: List[List[Speaker]] = []
    used = set()
    v_i = 0
    for voices, n in ((ENGLISH_VOICES, n_english), (ACCENT_VOICES, n_accent)):
        order = [voices[i] for i in rng.permutation(len(voices))]
        group: List[Speaker] = []
        k = 0
        while len(group) < n:
            spk = Speaker(ESPEAK, order[k % len(order)], variants[v_i % len(variants)])
            k += 1
            v_i += 1
            if spk not in used:
                used.add(spk)
                group.append(spk)
        groups.append(group)
    # proportional interleave: sort by relative rank within the group
    ranked = sorted(((i + 0.5) / len(g), gi, s) for gi, g in enumerate(groups) for i, s in enumerate(g))
    ordered = [s for _, _, s in ranked]
    n_valid = max(1, int(round(config.valid_fraction * len(ordered))))
    n_test = max(1, int(round(config.test_fraction * len(ordered))))
    splits = ["valid", "test"] * max(n_valid, n_test)
    counts = {"valid": 0, "test": 0}
    plans = []
    for spk in ordered:
        split = "train"
        for s in splits:  # alternate valid/test until each is full
            if counts[s] < {"valid": n_valid, "test": n_test}[s]:
                split = s
                counts[s] += 1
                break
        r = _rng(config.seed, "traits", spk.id)
        plans.append(SpeakerPlan(spk, split, float(r.uniform(*config.speaker_pitch)),
                                 float(r.uniform(*config.speaker_speed))))
    if config.festival and have_tool("text2wave"):
        from hear_suite.corpora.speech import _festival_voices
        for voice in FESTIVAL_VOICES:
            if voice not in _festival_voices():
                continue
            for label, pitch in FESTIVAL_PRESETS.items():
                spk = Speaker(FESTIVAL, voice, label)
                r = _rng(config.seed, "traits", spk.id)
                plans.append(SpeakerPlan(spk, "train", pitch, float(r.uniform(*config.speaker_speed))))
    return sorted(plans, key=lambda p: (SPLITS.index(p.split), p.id))


def clip_specs(config: KeywordConfig, plans: Sequence[SpeakerPlan]) -> List[ClipSpec]:
    """All clips in writing order: split, speaker, word, repetition."""
    specs = []
    for plan in plans:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", plan.id).strip("-")
        for word in config.words:
            for rep in range(config.clips_per_speaker_word):
                specs.append(ClipSpec(len(specs), f"{word}_{slug}_{rep}", word, rep, plan, config))
    return specs


def make_clip(spec: ClipSpec) -> Tuple[np.ndarray, dict]:
    """Synthesise and augment one clip: float32 (duration * sample_rate,), and its parameters."""
    c, plan = spec.config, spec.plan
    sr = c.sample_rate
    rng = _rng(c.seed, "clip", plan.id, spec.word, str(spec.rep))
    pitch = plan.pitch + float(rng.uniform(-c.clip_pitch, c.clip_pitch))
    speed = plan.speed * float(rng.uniform(1 - c.clip_speed, 1 + c.clip_speed))
    punct = c.intonation[int(rng.integers(len(c.intonation)))] if c.intonation else ""
    audio = speak(spec.word + punct, plan.speaker, sample_rate=sr, pitch=pitch, speed=speed)
    audio = fx.trim_silence(audio, sr, threshold_db=-40.0, pad_ms=20.0)
    spoken = len(audio) / sr
    audio = fx.fade(fx.fit_duration(audio, sr, c.max_word), sr, 5.0)
    n = int(round(c.duration * sr))
    window, offset = fx.place_in_window(audio, n, rng, jitter=0.9)
    info = {"speaker": plan.id, "text": spec.word + punct, "pitch": round(pitch, 2),
            "speed": round(speed, 3),
            "spoken_s": round(spoken, 3), "word_s": round(len(audio) / sr, 3),
            "offset_s": round(offset / sr, 3)}
    if rng.random() < c.p_reverb:
        window, params = fx.reverb(window, sr, rng)
        info["reverb"] = {k: round(v, 1) for k, v in params.items()}
    level = float(rng.uniform(*c.level_db))
    window = fx.set_level(window, sr, level)
    snr = float(rng.uniform(*c.snr_db))
    color = c.noise_colors[int(rng.integers(len(c.noise_colors)))]
    hum_db = float(rng.uniform(*c.hum_db)) if rng.random() < c.p_hum else None
    window = fx.add_noise(window, snr, rng, color=color, sample_rate=sr, hum_db=hum_db)
    window = fx.limit_peak(window, 0.98)
    info.update(level_db=round(level, 1), snr_db=round(snr, 1), noise=color)
    if hum_db is not None:
        info["hum_db"] = round(hum_db, 1)
    return window.astype(np.float32), info


def _imap(specs: List[ClipSpec], workers: int) -> Iterator[Tuple[np.ndarray, dict]]:
    if workers <= 1:
        yield from map(make_clip, specs)
        return
    # fork keeps start-up cheap; results come back in input order whatever the scheduling.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(make_clip, specs, chunksize=4)


def build_keywords(
    out_dir: Path,
    config: KeywordConfig = KeywordConfig(),
    *,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write the keyword task under ``out_dir`` (a HEAR tasks directory); returns the task path,
    ``out_dir/<task_name>-<version>-full``."""
    require_tool("espeak-ng")
    require_tool("sox")
    plans = plan_speakers(config)
    specs = clip_specs(config, plans)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    speakers: Dict[str, str] = {}
    clips: Dict[str, dict] = {}
    writer = TaskWriter(
        out_dir, task_name=config.task_name, version=config.version, mode="full",
        embedding_type="scene", prediction_type="multiclass", split_mode="trainvaltest",
        sample_duration=config.duration, evaluation=["top1_acc"], sample_rate=config.sample_rate,
        labels=config.words,
    )
    with writer:
        results = _imap(specs, workers)
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(specs), desc=f"{config.task_name} clips", unit="clip")
        for spec, (audio, info) in zip(specs, results):
            writer.add(spec.plan.split, spec.stem, audio, [spec.word])
            speakers[f"{spec.stem}.wav"] = spec.plan.id
            clips[f"{spec.stem}.wav"] = info
    task = writer.path
    # Side files go in after the rename: heareval ignores them; a task without speakers.json
    # is an interrupted run (rerun it).
    corpus = {
        "config": asdict(config),
        "speakers": {s: [{"id": p.id, "pitch": round(p.pitch, 2), "speed": round(p.speed, 3)}
                         for p in plans if p.split == s] for s in SPLITS},
        "clips": clips,
    }
    write_json_atomic(task / "corpus.json", corpus)
    write_json_atomic(task / "speakers.json", speakers)
    return task


def read_speakers(task_dir: Path) -> Dict[str, str]:
    """``{"<stem>.wav": speaker id}`` of a keyword task (from its ``speakers.json``)."""
    import json
    return json.loads((Path(task_dir) / "speakers.json").read_text())
