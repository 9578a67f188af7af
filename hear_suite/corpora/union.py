"""Several HEAR scene tasks merged into one, each label prefixed by its label set.

``real_multitask`` (multilabel, 4 s) trains the AST on every label set at once; a multiclass
union of 1 s clips (``hear-suite make-corpus union --multiclass --seconds 1``) does the same for
KW-MLP, whose trainer and classifier are multiclass: every clip keeps the one label of its own
task, so a softmax over all label sets still has one right answer per clip.

    hear-suite make-corpus union --out DIR --from TASK [TASK ...] [--seconds 4] [--multiclass]

Clips longer than ``seconds`` are cut to the window around their loudest 100 ms (a drum hit or a
desktop sound placed late in a 4 s clip stays in a 1 s crop); shorter ones are zero-padded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from hear_suite.tasks import MULTICLASS, MULTILABEL, SCENE, TaskWriter, load_wav, read_task

PREFIXES: Dict[str, str] = {"real_speaker_id": "speaker", "real_instrument_pitch": "pitch",
                            "real_drum_pieces": "drum", "real_sound_kinds": "kind"}


def label_set_prefix(task_name: str) -> str:
    """``real_drum_pieces`` -> ``drum``; other tasks by name without ``gen_`` (``sound_mixtures``)."""
    return PREFIXES.get(task_name, task_name.removeprefix("gen_"))


def loudest_window(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """``n`` samples of ``audio`` centred on its loudest 100 ms frame, kept inside the clip."""
    if len(audio) <= n:
        return np.pad(audio, (0, n - len(audio)))
    frame = sample_rate // 10
    energy = np.convolve(audio.astype(np.float64) ** 2, np.ones(frame), mode="same")
    start = int(np.clip(int(np.argmax(energy)) - n // 2, 0, len(audio) - n))
    return audio[start:start + n]


def merge_tasks(root: Path, tasks: Sequence[Path], *, task_name: str, seconds: float,
                multiclass: bool = False, sample_rate: int = 16000) -> Path:
    """Write ``root/<task_name>-v1-full``: the train/valid/test clips of every scene task in
    ``tasks``, labels prefixed (``drum:kick``). Multilabel (``mAP``) unless ``multiclass``."""
    read = [read_task(t, sample_rate) for t in tasks]
    prefixes = [label_set_prefix(t.metadata["task_name"]) for t in read]
    for task in read:
        if not task.is_scene or task.splits != ["train", "valid", "test"]:
            raise ValueError(f"{task.path}: merging needs train/valid/test scene tasks")
        if multiclass and task.is_multilabel:
            raise ValueError(f"{task.path} is multilabel: a multiclass union needs one label a clip")
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"two tasks with the same label set: {prefixes}")
    n = int(round(seconds * sample_rate))
    with TaskWriter(root, task_name=task_name, embedding_type=SCENE,
                    prediction_type=MULTICLASS if multiclass else MULTILABEL,
                    sample_duration=seconds, evaluation=["top1_acc" if multiclass else "mAP"],
                    sample_rate=sample_rate,
                    extra_metadata={"label_sets": dict(zip(prefixes, (t.name for t in read)))}
                    ) as writer:
        for task, prefix in zip(read, prefixes):
            for split in task.splits:
                for path, labels in task.examples[split].items():
                    writer.add(split, f"{prefix}-{path.stem}",
                               loudest_window(load_wav(path), n, sample_rate),
                               [f"{prefix}:{x}" for x in labels])
    return writer.path
