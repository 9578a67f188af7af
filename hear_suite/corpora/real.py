"""Real recordings from Debian packages, written as HEAR tasks whose test sources are unseen.

Four tasks, one per family of HEAR 2021 (the corpus card, ``hear_suite/corpora/README.md``,
lists every source, its package, license and clip count):

- ``real_speaker_id`` (speech, 11 classes): who speaks a prompt, letter or syllable. Human
  recordings of Asterisk's voice prompts (five voices; Allison's English and Spanish prompts are
  one speaker) and KLettres (one speaker per language directory, six of them). The speaker is the
  label, so this task splits by utterance (60/20/20), and it is for evaluation only: none of its
  speakers is in ``real_multitask`` or ``real_pool/``, so no shipped model has heard them. All of
  its speech is band-limited to the telephone band (8 kHz sampling), as Asterisk's prompts are,
  so the recording bandwidth does not name the package.
- ``real_instrument_pitch`` (music, 36 pitches, ``pitch_acc``/``chroma_acc``): isolated notes
  of the MuseScore General SoundFont's sampled instruments (not the FluidR3 set of the synthetic
  corpora); GM programs split within each instrument family, so test instruments are unseen.
- ``real_drum_pieces`` (percussion, 6 classes): kick, snare, hi-hat, tom, cymbal, clap from
  Hydrogen's drum kits and LMMS's drum samples; split by kit.
- ``real_sound_kinds`` (general sounds, 6 classes): speech, drums, instrument notes, music,
  desktop sounds and game effects from KLettres, Hydrogen, MuseScore General, LMMS, desktop sound
  themes and game data packages; split by package (or by language, kit and program).

In the other three, train and valid clips come from the same sources (valid is a random 15 % of
them); test clips come only from sources in neither. ``real_multitask`` merges those three into
one multilabel task (labels prefixed ``pitch:``, ``drum:``, ``kind:``) for multi-label-set
training, and ``real_pool/`` holds their train and valid audio as plain wav files (for
unsupervised training that must not see test audio).

Everything is keyed by ``(seed, task, source, file)``: the same seed and installed packages give
the same corpus. A missing package raises :class:`MissingPackage`, naming it.

>>> build_real(Path("tasks"), RealConfig(scale=1.0))   # -> tasks/real_*-v1-full, tasks/real_pool
"""
from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from hear_suite.corpora import effects, music
from hear_suite.corpora.union import merge_tasks
from hear_suite.corpora.speech import resample
from hear_suite.tasks import MULTICLASS, SCENE, TaskWriter, read_task

TASKS = ("real_speaker_id", "real_instrument_pitch", "real_drum_pieces", "real_sound_kinds")
# what shipped models may train on (train/valid splits only); real_speaker_id is evaluation only
TRAINING_TASKS = ("real_instrument_pitch", "real_drum_pieces", "real_sound_kinds")
SPEAKER_SPLIT = (0.6, 0.2, 0.2)
AUDIO_EXTENSIONS = (".wav", ".ogg", ".oga", ".flac", ".aiff", ".aif")
VALID_SHARE = 0.15


class MissingPackage(RuntimeError):
    """A Debian package a task reads is not installed."""


@dataclass(frozen=True)
class RealConfig:
    seed: int = 0
    scale: float = 1.0          # multiplies every per-source clip cap (0.05 for a CI-sized corpus)
    tasks: Tuple[str, ...] = TASKS
    sample_rate: int = 16000
    root: str = "/"             # where the Debian packages' files are (tests point it elsewhere)


@dataclass(frozen=True)
class Clip:
    """One clip to write: where its audio comes from, its label and split."""

    source: str                 # e.g. "klettres/fr", "hydrogen/ForzeeStereo"
    package: str                # Debian package
    split: str                  # train | valid | test ("trainvalid" before the valid draw)
    label: str
    path: Optional[Path] = None                 # a recording
    note: Optional[Tuple[int, int, int]] = None  # or a SoundFont note (program, pitch, velocity)
    offset_s: float = 0.0                        # start in the recording
    excerpt: bool = False                        # read only the clip's length from offset_s


@dataclass
class Source:
    """A set of recordings of one package with their labels and split."""

    name: str
    package: str
    split: str
    files: List[Tuple[Path, str]] = field(default_factory=list)  # (path, label)


# ---------------------------------------------------------------------------------------------
# where the packages put their files
# ---------------------------------------------------------------------------------------------

def _dir(config: RealConfig, package: str, *parts: str) -> Path:
    path = Path(config.root, "usr/share", *parts)
    if not path.is_dir():
        raise MissingPackage(f"the Debian package {package} is not installed ({path} missing): "
                             f"apt-get install -y {package}, or bash scripts/setup.sh")
    return path


def _readable(path: Path) -> bool:
    # a few packaged files are malformed (LMMS's kick04.ogg is a WAV header on Ogg data)
    try:
        return sf.info(str(path)).frames > 0
    except (RuntimeError, sf.LibsndfileError):
        return False


def _audio_files(folder: Path, pattern: str = "**/*") -> List[Path]:
    found = {p.resolve(): p for p in folder.glob(pattern)
             if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()}
    # symlinked duplicates (Asterisk's en/ and en_US/) once
    return sorted(p for p in found.values() if _readable(p))


def _rng(config: RealConfig, *keys: str) -> np.random.Generator:
    return np.random.default_rng([config.seed] + [zlib.crc32(k.encode()) for k in keys])


def _cap(config: RealConfig, per_scale: int) -> int:
    return max(1, int(round(per_scale * config.scale)))


def _subsample(config: RealConfig, items: Sequence, cap: int, *keys: str) -> list:
    if len(items) <= cap:
        return list(items)
    pick = _rng(config, "subsample", *keys).choice(len(items), size=cap, replace=False)
    return [items[i] for i in sorted(pick)]


# ---------------------------------------------------------------------------------------------
# speech: Asterisk prompts and KLettres
# ---------------------------------------------------------------------------------------------

ASTERISK = {  # voice directory -> Debian package
    "en_US_f_Allison": "asterisk-core-sounds-en-wav",
    "es_MX_f_Allison": "asterisk-core-sounds-es-wav",
    "fr_CA_f_June": "asterisk-core-sounds-fr-wav",
    "it_IT_m_Carlo": "asterisk-core-sounds-it-wav",
    "it_IT_f_Menardi": "asterisk-prompt-it-menardi-wav",
    "ru_RU_f_IvrvoiceRU": "asterisk-core-sounds-ru-wav",
}
# speaker -> voice directories (Allison recorded both the English and the Spanish prompts)
SPEAKERS = {
    "allison": ["asterisk/en_US_f_Allison", "asterisk/es_MX_f_Allison"],
    "june": ["asterisk/fr_CA_f_June"], "carlo": ["asterisk/it_IT_m_Carlo"],
    "menardi": ["asterisk/it_IT_f_Menardi"], "ivrvoice_ru": ["asterisk/ru_RU_f_IvrvoiceRU"],
    **{f"klettres_{lang}": [f"klettres/{lang}"] for lang in ("en", "en_GB", "es", "fr", "it", "ru")},
}
# KLettres languages of real_sound_kinds (the speakers real_speaker_id leaves out), by split
KLETTRES_KIND_SPLITS = {"train": ["ar", "cs", "da", "lt", "ml", "nb", "nds", "uk"],
                        "valid": ["nl", "tn"], "test": ["de", "he", "hu", "pt_BR"]}


def _speech_source(config: RealConfig, name: str, split: str, label: str) -> Source:
    kind, voice = name.split("/")
    if kind == "asterisk":
        package = ASTERISK[voice]
        files = _audio_files(_dir(config, package, "asterisk/sounds", voice))
    else:
        package = "klettres-data"
        files = _audio_files(_dir(config, package, "klettres", voice))
    return Source(name, package, split, [(p, label) for p in files])


def speaker_sources(config: RealConfig) -> List[Source]:
    return [_speech_source(config, name, "utterance", speaker)
            for speaker, names in SPEAKERS.items() for name in names]


# ---------------------------------------------------------------------------------------------
# drums: Hydrogen kits and LMMS samples
# ---------------------------------------------------------------------------------------------

DRUM_CLASSES = ("clap", "cymbal", "hihat", "kick", "snare", "tom")
# Kits of one author share samples: the three Millo kits stay in one split.
KIT_SPLITS = {"valid": ["VariBreaks", "Audiophob"],
              "test": ["The Black Pearl 1.0", "HardElectro1", "ColomboAcousticDrumkit"]}
_DRUM_WORDS = [  # first match wins: "hi-hat" before "hat"-less words, "clap" before anything
    ("clap", r"clap"), ("hihat", r"hat|\bhh\b|hh\d|hhat"),
    ("cymbal", r"crash|ride|splash|china|cymbal"),
    ("kick", r"kick|bass ?drum|\bbd\b|^bd_"), ("snare", r"snare|rimshot"), ("tom", r"tom"),
]


def drum_class(name: str) -> Optional[str]:
    """The drum piece of a Hydrogen instrument or sample name, or None (stick, cowbell, ...)."""
    name = name.lower()
    for label, pattern in _DRUM_WORDS:
        if re.search(pattern, name):
            return label
    return None


def _kit_split(kit: str) -> str:
    """``valid`` or ``test`` for the kits of ``KIT_SPLITS``; the other kits give train and valid
    clips (``trainvalid``)."""
    return next((split for split, kits in KIT_SPLITS.items() if kit in kits), "trainvalid")


def drum_sources(config: RealConfig) -> List[Source]:
    kits_dir = _dir(config, "hydrogen-drumkits", "hydrogen/data/drumkits")
    sources = []
    for kit_dir in sorted(p for p in kits_dir.iterdir() if (p / "drumkit.xml").is_file()):
        files: Dict[Path, str] = {}
        for inst in ET.parse(kit_dir / "drumkit.xml").getroot().iter():
            if inst.tag.split("}")[-1] != "instrument":
                continue
            name = next((c.text or "" for c in inst if c.tag.split("}")[-1] == "name"), "")
            label = drum_class(name)
            for f in inst.iter():
                if label and f.tag.split("}")[-1] == "filename" and f.text:
                    path = kit_dir / f.text.strip()
                    if path.is_file() and _readable(path):
                        files.setdefault(path, label)
        if files:
            sources.append(Source(f"hydrogen/{kit_dir.name}", "hydrogen-drumkits",
                                  _kit_split(kit_dir.name), sorted(files.items())))
    lmms = _dir(config, "lmms-common", "lmms/samples")
    files = [(p, drum_class(p.stem)) for p in _audio_files(lmms / "drums")]
    sources.append(Source("lmms/drums", "lmms-common", "trainvalid",
                          [(p, c) for p, c in files if c is not None]))
    return sources


# ---------------------------------------------------------------------------------------------
# sampled instruments: MuseScore General
# ---------------------------------------------------------------------------------------------

PITCHES = (48, 84)   # MIDI C3..B5, half-open: 36 labels, all two digits (index = pitch - 48)
PROGRAMS = range(0, 112)  # GM melodic programs (112-127 are percussive and sound effects)


def musescore_soundfont(config: RealConfig) -> Path:
    path = _dir(config, "musescore-general-soundfont-small", "sounds/sf3") / "MuseScore_General.sf3"
    if not path.is_file():
        raise MissingPackage(f"{path} missing: apt-get install -y musescore-general-soundfont-small")
    return path


def program_splits(config: RealConfig) -> Dict[int, str]:
    """GM program -> split: within each family of 8 programs, 5 train, 1 valid, 2 test."""
    out = {}
    for family in range(0, 112, 8):
        order = _rng(config, "programs", str(family)).permutation(8) + family
        for k, program in enumerate(order):
            out[int(program)] = "train" if k < 5 else "valid" if k < 6 else "test"
    return out


def pitch_clips(config: RealConfig) -> List[Clip]:
    musescore_soundfont(config)
    clips = []
    for program, split in program_splits(config).items():
        rng = _rng(config, "pitch", str(program))
        n = min(PITCHES[1] - PITCHES[0], _cap(config, 12))
        for pitch in sorted(rng.choice(np.arange(*PITCHES), size=n, replace=False)):
            clips.append(Clip(f"musescore/{program:03d}", "musescore-general-soundfont-small",
                              split, str(int(pitch)),
                              note=(program, int(pitch), int(rng.integers(60, 121)))))
    return clips


# ---------------------------------------------------------------------------------------------
# general sounds: desktop themes, games, LMMS
# ---------------------------------------------------------------------------------------------

# (source name, Debian package, split, label, folder under /usr/share, glob)
KIND_SOURCES = (
    ("lmms/instruments", "lmms-common", "trainvalid", "instrument", "lmms/samples/instruments", "**/*"),
    ("lmms/effects", "lmms-common", "trainvalid", "game_effect", "lmms/samples/effects", "**/*"),
    ("colobot/sounds", "colobot-common-sounds", "trainvalid", "game_effect", "games/colobot/sounds", "**/*"),
    ("tuxpaint", "tuxpaint-data", "trainvalid", "game_effect", "tuxpaint/sounds", "**/*"),
    ("heroes", "heroes-sound-effects", "valid", "game_effect", "games/heroes/sfx", "**/*"),
    ("moon-lander", "moon-lander-data", "valid", "game_effect", "games/moon-lander/sounds", "**/*"),
    ("frozen-bubble", "frozen-bubble-data", "test", "game_effect", "games/frozen-bubble/snd", "**/*"),
    ("pingus", "pingus-data", "test", "game_effect", "games/pingus/data/sounds", "**/*"),
    ("etr/sounds", "extremetuxracer-data", "test", "game_effect", "games/etr/sounds", "**/*"),
    ("oxygen", "oxygen-sounds", "trainvalid", "desktop_sound", "sounds", "Oxygen-*"),
    ("deepin", "deepin-sound-theme", "valid", "desktop_sound", "sounds/deepin", "**/*"),
    ("lomiri", "lomiri-sounds", "test", "desktop_sound", "sounds/lomiri", "**/*"),
    ("colobot/music", "colobot-common-sounds", "trainvalid", "music", "games/colobot/music", "**/*"),
    # the name overstates it (the glob takes bassloops/ only); it keys the clips' file names
    ("lmms/bassloops+beats", "lmms-common", "valid", "music", "lmms/samples", "b*loops/*"),
    ("etr/music", "extremetuxracer-data", "test", "music", "games/etr/music", "**/*"),
)


def sound_kind_sources(config: RealConfig) -> List[Source]:
    s = [_speech_source(config, f"klettres/{lang}", "trainvalid" if split == "train" else split,
                        "speech")
         for split, languages in KLETTRES_KIND_SPLITS.items() for lang in languages]
    s += [Source(d.name, d.package, d.split, [(p, "drums") for p, _ in d.files])
          for d in drum_sources(config)]
    for name, package, split, label, folder, pattern in KIND_SOURCES:
        files = _audio_files(_dir(config, package, folder), pattern)
        s.append(Source(name, package, split, [(p, label) for p in files]))
    return s


def sound_kind_clips(config: RealConfig, seconds: float) -> List[Clip]:
    clips = _source_clips(config, "real_sound_kinds", sound_kind_sources(config), cap=50)
    # Long music tracks give several excerpts: one per `seconds`-long stretch, up to 6 a track.
    out = []
    for c in clips:
        if c.label == "music":
            duration = sf.info(str(c.path)).duration
            n = int(min(6, max(1, duration // (2 * seconds))))
            starts = np.linspace(0, max(0.0, duration - seconds), n + 2)[1:-1] if n > 1 else [0.0]
            out += [replace(c, offset_s=float(t), excerpt=True) for t in starts]
        else:
            out.append(c)
    # instrument notes: a few MuseScore notes per program, the pitch task's program split
    splits = program_splits(config)
    for program in PROGRAMS:
        rng = _rng(config, "kind-note", str(program))
        for _ in range(_cap(config, 1)):
            out.append(Clip(f"musescore/{program:03d}", "musescore-general-soundfont-small",
                            splits[program], "instrument",
                            note=(program, int(rng.integers(*PITCHES)), int(rng.integers(60, 121)))))
    return out


# ---------------------------------------------------------------------------------------------
# assembling and writing the tasks
# ---------------------------------------------------------------------------------------------

def _source_clips(config: RealConfig, task: str, sources: Sequence[Source], cap: int) -> List[Clip]:
    """At most ``cap * scale`` clips per (source, label), drawn per seed."""
    clips = []
    for s in sources:
        by_label: Dict[str, List[Path]] = {}
        for path, label in s.files:
            by_label.setdefault(label, []).append(path)
        for label, paths in sorted(by_label.items()):
            for p in _subsample(config, paths, _cap(config, cap), task, s.name, label):
                clips.append(Clip(s.name, s.package, s.split, label, p))
    return clips


def _assign_valid(config: RealConfig, task: str, clips: List[Clip]) -> List[Clip]:
    """``trainvalid`` clips -> train, or valid with probability 15 % (per clip, per seed);
    ``utterance`` clips -> train/valid/test in the proportions ``SPEAKER_SPLIT`` within each
    label (stratified: every speaker with 3 clips or more is in every split)."""
    out = []
    by_label: Dict[str, List[int]] = {}
    for i, c in enumerate(clips):
        split = c.split
        if split == "trainvalid":
            key = f"{c.path or c.note}:{c.offset_s}"
            split = "valid" if _rng(config, task, "valid", key).random() < VALID_SHARE else "train"
        elif split == "utterance":
            by_label.setdefault(c.label, []).append(i)
        out.append(replace(c, split=split))
    for label, idx in by_label.items():
        order = [idx[k] for k in _rng(config, task, "utterance", label).permutation(len(idx))]
        n_valid = max(1, round(SPEAKER_SPLIT[1] * len(idx)))
        n_test = max(1, round(SPEAKER_SPLIT[2] * len(idx)))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
            out[i] = replace(out[i], split=split)
    return out


@dataclass(frozen=True)
class TaskSpec:
    name: str
    seconds: float
    evaluation: Tuple[str, ...]
    clips: Callable[[RealConfig], List[Clip]]
    telephone: bool = False       # band-limit to 4 kHz (8 kHz sampling)
    labels: Optional[Tuple[str, ...]] = None


SPECS = {
    "real_speaker_id": TaskSpec(
        "real_speaker_id", 3.0, ("top1_acc",),
        lambda c: _source_clips(c, "real_speaker_id", speaker_sources(c), cap=80),
        telephone=True),
    "real_instrument_pitch": TaskSpec(
        "real_instrument_pitch", 2.0, ("pitch_acc", "chroma_acc"), pitch_clips,
        labels=tuple(str(p) for p in range(*PITCHES))),
    "real_drum_pieces": TaskSpec(
        "real_drum_pieces", 1.0, ("top1_acc",),
        lambda c: _source_clips(c, "real_drum_pieces", drum_sources(c), cap=20)),
    "real_sound_kinds": TaskSpec(
        "real_sound_kinds", 4.0, ("top1_acc",), lambda c: sound_kind_clips(c, 4.0)),
}


def load_recording(path: Path, sample_rate: int, offset_s: float = 0.0,
                   seconds: Optional[float] = None) -> np.ndarray:
    """Mono float32 at ``sample_rate`` of ``seconds`` (all by default) from ``offset_s``."""
    with sf.SoundFile(str(path)) as f:
        f.seek(min(int(offset_s * f.samplerate), max(0, f.frames - 1)))
        frames = -1 if seconds is None else int(np.ceil(seconds * f.samplerate)) + 1
        audio = f.read(frames, dtype="float32", always_2d=True).mean(axis=1)
        sr = f.samplerate
    return resample(audio, sr, sample_rate) if sr != sample_rate else audio


def render_clip(clip: Clip, spec: TaskSpec, config: RealConfig, soundfont: Optional[Path],
                note_audio: Optional[np.ndarray] = None) -> np.ndarray:
    """The clip's audio: ``spec.seconds`` long at the task's rate, level drawn per clip."""
    sr, n = config.sample_rate, int(round(spec.seconds * config.sample_rate))
    rng = _rng(config, spec.name, "render", f"{clip.path or clip.note}:{clip.offset_s}")
    if note_audio is not None:
        audio = note_audio
    else:
        audio = load_recording(clip.path, sr, clip.offset_s,
                               spec.seconds if clip.excerpt else None)
        if clip.offset_s == 0:
            audio = effects.trim_silence(audio, sr)
    if spec.telephone:
        audio = resample(resample(audio, sr, 8000), 8000, sr)
    if len(audio) >= n:
        audio = audio[:n]
    elif spec.telephone or note_audio is not None or spec.seconds <= 1.0:
        audio = np.pad(audio, (0, n - len(audio)))  # speech, notes and drum hits from the start
    else:  # other short sounds at a random time in the clip
        audio, _ = effects.place_in_window(audio, n, rng)
    peak = float(np.abs(audio).max())
    if peak < 1e-5:
        return np.zeros(n, np.float32)
    # the level is drawn, not kept: a package's mastering level must not give its label away
    return (audio * (10 ** (rng.uniform(-18.0, -1.0) / 20) / peak)).astype(np.float32)


def _render_notes(clips: Sequence[Clip], seconds: float, config: RealConfig,
                  soundfont: Path) -> Dict[int, np.ndarray]:
    requests = [(i, c.note) for i, c in enumerate(clips) if c.note is not None]
    if not requests:
        return {}
    audio = music.render_isolated_notes([r for _, r in requests], config.sample_rate,
                                        clip_s=seconds, hold_s=0.75 * seconds,
                                        spacing_s=seconds + 1.0, soundfont=str(soundfont))
    return {i: a for (i, _), a in zip(requests, audio)}


def stem_of(clip: Clip, index: int) -> str:
    base = clip.source.replace("/", "-").replace(" ", "_")
    return re.sub(r"[^A-Za-z0-9_.-]", "", f"{index:05d}-{base}-{clip.label}")


def write_task(root: Path, spec: TaskSpec, config: RealConfig, clips: Sequence[Clip], *,
               progress: bool = True) -> Path:
    """Write task ``spec`` of ``clips`` (from :func:`plan_clips`: splits assigned)."""
    for split in ("train", "valid", "test"):
        if not any(c.split == split for c in clips):
            raise ValueError(f"{spec.name}: no {split} clips (scale {config.scale} too small?)")
    soundfont = musescore_soundfont(config) if any(c.note for c in clips) else None
    notes = _render_notes(clips, spec.seconds, config, soundfont) if soundfont else {}
    sources = sorted({(c.source, c.package, c.split) for c in clips})
    extra = {"corpus": "real", "seed": config.seed, "scale": config.scale,
             "sources": [{"source": s, "package": p, "split": sp,
                          "clips": sum(c.source == s and c.split == sp for c in clips)}
                         for s, p, sp in sources]}
    with TaskWriter(root, task_name=spec.name, embedding_type=SCENE, prediction_type=MULTICLASS,
                    sample_duration=spec.seconds, evaluation=list(spec.evaluation),
                    sample_rate=config.sample_rate, labels=spec.labels,
                    extra_metadata=extra) as writer:
        for i, clip in enumerate(tqdm(clips, desc=spec.name, disable=not progress, unit="clip")):
            audio = render_clip(clip, spec, config, soundfont, notes.get(i))
            writer.add(clip.split, stem_of(clip, i), audio, [clip.label])
    return writer.path


def write_pool(root: Path, tasks: Sequence[Path], sample_rate: int) -> Path:
    """``root/real_pool/<task>/<split>/*.wav``: the train and valid audio of every task (links
    where the file system allows), for unsupervised training that must not see test audio."""
    pool = root / "real_pool"
    tmp = root / ".real_pool.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for task_dir in tasks:
        task = read_task(task_dir, sample_rate)
        for split in ("train", "valid"):
            dest = tmp / task_dir.name / split
            dest.mkdir(parents=True)
            for path in task.examples[split]:
                try:
                    os.link(path, dest / path.name)
                except OSError:
                    shutil.copy2(path, dest / path.name)
    shutil.rmtree(pool, ignore_errors=True)
    os.replace(tmp, pool)
    return pool


def plan_clips(config: RealConfig) -> Dict[str, List[Clip]]:
    """``{task: clips with their splits}`` for ``config.tasks``: every source is listed (and
    every package checked, :class:`MissingPackage`) before any audio is written."""
    unknown = [name for name in config.tasks if name not in SPECS]
    if unknown:
        raise ValueError(f"unknown real task {unknown[0]!r}; choose from {list(SPECS)}")
    return {name: _assign_valid(config, name, SPECS[name].clips(config)) for name in config.tasks}


def build_real(root: Path, config: RealConfig, *, progress: bool = True,
               multitask_extra: Sequence[Path] = ()) -> List[Path]:
    """Write the real tasks of ``config.tasks`` under ``root``, then, from the
    ``TRAINING_TASKS`` among them, ``real_pool/`` and (when all three are built)
    ``real_multitask``, with the label sets of the ``multitask_extra`` scene tasks too (e.g. a
    synthetic one). Returns the task directories written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    plans = plan_clips(config)
    for extra in multitask_extra:
        read_task(extra)  # a clear error before hours of work
    written = [write_task(root, SPECS[name], config, clips, progress=progress)
               for name, clips in plans.items()]
    training = [p for name, p in zip(config.tasks, written) if name in TRAINING_TASKS]
    if set(TRAINING_TASKS) <= set(config.tasks):
        written.append(merge_tasks(root, training + list(multitask_extra), seconds=4.0,
                                   task_name="real_multitask", sample_rate=config.sample_rate))
    if training:
        write_pool(root, training, config.sample_rate)
    return written


def package_table(task_dirs: Sequence[Path]) -> str:
    """Markdown: clips per Debian package and split over the written tasks (the counts of the
    corpus card), from each task's ``sources`` metadata."""
    counts: Dict[str, Dict[str, int]] = {}
    tasks: Dict[str, set] = {}
    for t in task_dirs:
        meta = read_task(t).metadata
        for s in meta.get("sources", []):
            counts.setdefault(s["package"], {"train": 0, "valid": 0, "test": 0})
            counts[s["package"]][s["split"]] += s["clips"]
            tasks.setdefault(s["package"], set()).add(meta["task_name"].removeprefix("real_"))
    lines = ["| Debian package | tasks | train / valid / test clips |", "|---|---|---|"]
    lines += [f"| `{p}` | {', '.join(sorted(tasks[p]))} | {c['train']} / {c['valid']} / "
              f"{c['test']} |" for p, c in sorted(counts.items())]
    return "\n".join(lines)
