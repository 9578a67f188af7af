"""Where the real corpus's recordings come from (:mod:`hear_suite.corpora.real` writes the tasks):
the corpus's configuration, the Debian packages' folders, and per task the sources (a package's
recordings with their labels and split) or clips: speakers of Asterisk's prompts and KLettres,
drum pieces of Hydrogen's kits and LMMS, notes of MuseScore General's instruments, and the sound
kinds of desktop themes, games and LMMS. Splits are by source, so test sources are unseen."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf


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


def keyed_rng(config: RealConfig, *keys: str) -> np.random.Generator:
    return np.random.default_rng([config.seed] + [zlib.crc32(k.encode()) for k in keys])


def _cap(config: RealConfig, per_scale: int) -> int:
    return max(1, int(round(per_scale * config.scale)))


def _subsample(config: RealConfig, items: Sequence, cap: int, *keys: str) -> list:
    if len(items) <= cap:
        return list(items)
    pick = keyed_rng(config, "subsample", *keys).choice(len(items), size=cap, replace=False)
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
        order = keyed_rng(config, "programs", str(family)).permutation(8) + family
        for k, program in enumerate(order):
            out[int(program)] = "train" if k < 5 else "valid" if k < 6 else "test"
    return out


def pitch_clips(config: RealConfig) -> List[Clip]:
    musescore_soundfont(config)
    clips = []
    for program, split in program_splits(config).items():
        rng = keyed_rng(config, "pitch", str(program))
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
    clips = source_clips(config, "real_sound_kinds", sound_kind_sources(config), cap=50)
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
        rng = keyed_rng(config, "kind-note", str(program))
        for _ in range(_cap(config, 1)):
            out.append(Clip(f"musescore/{program:03d}", "musescore-general-soundfont-small",
                            splits[program], "instrument",
                            note=(program, int(rng.integers(*PITCHES)), int(rng.integers(60, 121)))))
    return out


def source_clips(config: RealConfig, task: str, sources: Sequence[Source], cap: int) -> List[Clip]:
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


def assign_valid(config: RealConfig, task: str, clips: List[Clip]) -> List[Clip]:
    """``trainvalid`` clips -> train, or valid with probability 15 % (per clip, per seed);
    ``utterance`` clips -> train/valid/test in the proportions ``SPEAKER_SPLIT`` within each
    label (stratified: every speaker with 3 clips or more is in every split)."""
    out = []
    by_label: Dict[str, List[int]] = {}
    for i, c in enumerate(clips):
        split = c.split
        if split == "trainvalid":
            key = f"{c.path or c.note}:{c.offset_s}"
            split = "valid" if keyed_rng(config, task, "valid", key).random() < VALID_SHARE else "train"
        elif split == "utterance":
            by_label.setdefault(c.label, []).append(i)
        out.append(replace(c, split=split))
    for label, idx in by_label.items():
        order = [idx[k] for k in keyed_rng(config, task, "utterance", label).permutation(len(idx))]
        n_valid = max(1, round(SPEAKER_SPLIT[1] * len(idx)))
        n_test = max(1, round(SPEAKER_SPLIT[2] * len(idx)))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
            out[i] = replace(out[i], split=split)
    return out
