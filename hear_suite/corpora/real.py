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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from hear_suite.corpora import effects, music
from hear_suite.corpora.real_sources import (TASKS, TRAINING_TASKS, PITCHES, Clip, MissingPackage,
                                             RealConfig, assign_valid, drum_sources, keyed_rng,
                                             musescore_soundfont, pitch_clips, sound_kind_clips,
                                             source_clips, speaker_sources)
from hear_suite.corpora.union import merge_tasks
from hear_suite.audio import resample
from hear_suite.tasks import MULTICLASS, SCENE, TaskWriter, read_task

__all__ = ["TASKS", "MissingPackage", "RealConfig", "TaskSpec", "build_real", "package_table",
           "plan_clips", "write_pool", "write_task"]


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
        lambda c: source_clips(c, "real_speaker_id", speaker_sources(c), cap=80),
        telephone=True),
    "real_instrument_pitch": TaskSpec(
        "real_instrument_pitch", 2.0, ("pitch_acc", "chroma_acc"), pitch_clips,
        labels=tuple(str(p) for p in range(*PITCHES))),
    "real_drum_pieces": TaskSpec(
        "real_drum_pieces", 1.0, ("top1_acc",),
        lambda c: source_clips(c, "real_drum_pieces", drum_sources(c), cap=20)),
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
    rng = keyed_rng(config, spec.name, "render", f"{clip.path or clip.note}:{clip.offset_s}")
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
    return {name: assign_valid(config, name, SPECS[name].clips(config)) for name in config.tasks}


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
