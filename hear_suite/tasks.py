"""HEAR 2021 task directories: reading and writing.

The format (see hear-preprocess and heareval 2021.1.3) of ``<tasks-dir>/<name>-<version>-<mode>/``:

- ``task_metadata.json``: ``task_name``, ``version``, ``mode``, ``embedding_type`` ("scene" or
  "event"), ``prediction_type`` ("multiclass" or "multilabel"), ``split_mode``, ``sample_duration``
  (seconds or null), ``evaluation`` (metrics, primary first), ``splits``, ``nfolds`` for k-fold,
  optional ``evaluation_params``.
- ``labelvocabulary.csv``: header ``idx,label``, labels sorted, idx 0..n-1.
- ``<split>.json``: scene ``{"x.wav": ["label", ...]}``; event
  ``{"x.wav": [{"label": ..., "start": ms, "end": ms}, ...]}``.
- ``<sample_rate>/<split>/<stem>.wav``: mono 16-bit PCM, exactly ``sample_duration`` long if set.

:class:`TaskWriter` builds a task in a temporary sibling directory and renames it into place when
:meth:`TaskWriter.close` succeeds, so an interrupted run never leaves a half-written task that
looks complete. :func:`read_task` reads any task in this format, including real HEAR tasks.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf

SCENE, EVENT = "scene", "event"
MULTICLASS, MULTILABEL = "multiclass", "multilabel"
SPLIT_MODES = ("trainvaltest", "presplit_kfold", "new_split_kfold")
TRAINVALTEST = ["train", "valid", "test"]

Labels = Union[List[str], List[Dict[str, Any]]]


def fold_names(nfolds: int) -> List[str]:
    """Split names of a k-fold task: ``fold00``, ``fold01``, ..."""
    return [f"fold{i:02d}" for i in range(nfolds)]


def write_atomic(path: Union[str, Path], data: Union[str, bytes]) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file beside it and a
    rename: a reader never sees a torn file, and an interrupted write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Union[str, Path], obj: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(path, json.dumps(obj, indent=1))


def write_wav(path: Union[str, Path], audio: np.ndarray, sample_rate: int,
              duration: Optional[float] = None) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM, trimmed/zero-padded to ``duration`` s."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"write_wav expects mono audio of shape (samples,), got {audio.shape}")
    if duration is not None:
        n = int(round(duration * sample_rate))
        audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


@dataclass
class Task:
    """A HEAR task read from disk.

    ``examples[split]`` maps each wav path (absolute, at ``sample_rate``) to its labels: a list of
    label strings for scene tasks, a list of ``{"label", "start", "end"}`` (ms) for event tasks.
    """

    path: Path
    metadata: Dict[str, Any]
    labels: List[str]
    sample_rate: int
    examples: Dict[str, Dict[Path, Labels]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def splits(self) -> List[str]:
        return list(self.metadata["splits"])

    @property
    def is_scene(self) -> bool:
        return self.metadata["embedding_type"] == SCENE

    @property
    def is_multilabel(self) -> bool:
        return self.metadata["prediction_type"] == MULTILABEL

    def label_index(self) -> Dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


def read_task(task_dir: Union[str, Path], sample_rate: Optional[int] = None) -> Task:
    """Read a HEAR task directory.

    ``sample_rate`` picks the audio folder; by default the only one present (or 16000 when several).
    Raises ``FileNotFoundError``/``ValueError`` naming what is missing or malformed.
    """
    task_dir = Path(task_dir)
    meta_path = task_dir / "task_metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{task_dir} is not a HEAR task: no task_metadata.json")
    metadata = json.loads(meta_path.read_text())
    for key in ("embedding_type", "prediction_type", "split_mode", "evaluation"):
        if key not in metadata:
            raise ValueError(f"{meta_path}: missing key {key!r}")
    if "splits" not in metadata:
        nfolds = metadata.get("nfolds")
        metadata["splits"] = fold_names(nfolds) if nfolds else list(TRAINVALTEST)

    with open(task_dir / "labelvocabulary.csv") as f:
        rows = list(csv.DictReader(f))
    labels = [row["label"] for row in sorted(rows, key=lambda r: int(r["idx"]))]

    if sample_rate is None:
        rates = sorted(int(p.name) for p in task_dir.iterdir() if p.is_dir() and p.name.isdigit())
        if not rates:
            raise FileNotFoundError(f"{task_dir}: no <sample_rate>/ audio folder")
        sample_rate = 16000 if 16000 in rates else rates[0]
    audio_root = task_dir / str(sample_rate)
    if not audio_root.is_dir():
        raise FileNotFoundError(f"{task_dir}: no audio at {sample_rate} Hz ({audio_root} missing)")

    examples: Dict[str, Dict[Path, Labels]] = {}
    for split in metadata["splits"]:
        split_json = task_dir / f"{split}.json"
        if not split_json.is_file():
            raise FileNotFoundError(f"{task_dir}: split file {split_json.name} missing")
        entries = json.loads(split_json.read_text())
        examples[split] = {audio_root / split / name: value for name, value in entries.items()}
    return Task(task_dir, metadata, labels, sample_rate, examples)


def load_wav(path: Union[str, Path]) -> np.ndarray:
    """Read a wav file as float32 mono of shape (samples,)."""
    audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1)


class TaskWriter:
    """Write one HEAR task directory, atomically.

    >>> with TaskWriter(root, task_name="keywords", embedding_type="scene", ...) as w:
    ...     w.add("train", "clip0", audio, ["yes"])
    """

    def __init__(
        self,
        root: Union[str, Path],
        *,
        task_name: str,
        version: str = "v1",
        mode: str = "full",
        embedding_type: str,
        prediction_type: str,
        split_mode: str = "trainvaltest",
        sample_duration: Optional[float],
        evaluation: Sequence[str],
        sample_rate: int = 16000,
        nfolds: Optional[int] = None,
        evaluation_params: Optional[Dict[str, Any]] = None,
        labels: Optional[Iterable[str]] = None,
        extra_metadata: Optional[Dict[str, Any]] = None,
        label_order: str = "text",
    ) -> None:
        if embedding_type not in (SCENE, EVENT):
            raise ValueError(f"embedding_type must be 'scene' or 'event', got {embedding_type!r}")
        if prediction_type not in (MULTICLASS, MULTILABEL):
            raise ValueError(f"prediction_type must be multiclass/multilabel, got {prediction_type!r}")
        if label_order not in ("text", "numeric"):
            raise ValueError(f"label_order must be 'text' or 'numeric', got {label_order!r}")
        self.label_order = label_order
        if split_mode not in SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}, got {split_mode!r}")
        kfold = split_mode != "trainvaltest"
        if kfold and (nfolds is None or nfolds < 3):
            raise ValueError("k-fold tasks need nfolds >= 3")
        self.splits = fold_names(nfolds) if kfold else list(TRAINVALTEST)
        self.metadata: Dict[str, Any] = {
            "task_name": task_name,
            "version": version,
            "mode": mode,
            "embedding_type": embedding_type,
            "prediction_type": prediction_type,
            "split_mode": split_mode,
            "sample_duration": sample_duration,
            "evaluation": list(evaluation),
            "splits": self.splits,
            "sample_rate": sample_rate,
        }
        if kfold:
            self.metadata["nfolds"] = nfolds
        if evaluation_params:
            self.metadata["evaluation_params"] = evaluation_params
        if extra_metadata:
            self.metadata.update(extra_metadata)
        self.sample_rate = sample_rate
        self.root = Path(root)
        self.path = self.root / f"{task_name}-{version}-{mode}"
        self._tmp = self.root / f".{self.path.name}.partial"
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        for split in self.splits:
            (self._tmp / str(sample_rate) / split).mkdir(parents=True)
        self._entries: Dict[str, Dict[str, Labels]] = {s: {} for s in self.splits}
        self._stems: set = set()
        self._labels = set(labels or ())

    def add(self, split: str, stem: str, audio: np.ndarray, labels: Labels) -> None:
        """Add one clip. ``labels``: label strings (scene) or event dicts with ms start/end."""
        if split not in self._entries:
            raise ValueError(f"unknown split {split!r}; this task has {self.splits}")
        if stem in self._stems:
            raise ValueError(f"duplicate stem {stem!r}: stems must be unique across the task")
        if self.metadata["embedding_type"] == SCENE:
            if not all(isinstance(x, str) for x in labels):
                raise ValueError("scene labels must be a list of strings")
            if self.metadata["prediction_type"] == MULTICLASS and len(labels) != 1:
                raise ValueError(f"multiclass clip {stem!r} needs exactly one label, got {labels}")
            self._labels.update(labels)
        else:
            for event in labels:
                if not {"label", "start", "end"} <= set(event):
                    raise ValueError(f"event labels need label/start/end, got {event}")
                self._labels.add(event["label"])
        self._stems.add(stem)
        write_wav(self._tmp / str(self.sample_rate) / split / f"{stem}.wav", audio,
                  self.sample_rate, self.metadata["sample_duration"])
        self._entries[split][f"{stem}.wav"] = list(labels)

    def vocabulary(self) -> List[str]:
        """The labels in ``labelvocabulary.csv`` order: sorted as text, or as numbers with
        ``label_order="numeric"`` (hear-preprocess reads an all-integer label column back as
        numbers, so MIDI pitches 21..108 are in pitch order, not "100" before "21")."""
        if self.label_order == "numeric":
            bad = [x for x in self._labels if not str(x).lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"label_order='numeric' needs integer labels, got {sorted(bad)[:5]}")
            return sorted(self._labels, key=int)
        return sorted(self._labels)

    def close(self) -> Path:
        """Write metadata, vocabulary and split files, then move the task into place."""
        empty = [s for s, e in self._entries.items() if not e]
        if empty:
            raise ValueError(f"task {self.path.name}: splits with no examples: {empty}")
        write_json_atomic(self._tmp / "task_metadata.json", self.metadata)
        with open(self._tmp / "labelvocabulary.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["idx", "label"])
            for i, label in enumerate(self.vocabulary()):
                writer.writerow([i, label])
        for split, entries in self._entries.items():
            write_json_atomic(self._tmp / f"{split}.json", entries)
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "TaskWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
