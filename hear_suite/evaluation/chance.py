"""Chance level of heareval's metrics: the expected score of a predictor that ignores the audio,
from a task's test labels. Printed next to every score, under the log-mel floor."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

from hear_suite.tasks import read_task

# Metrics whose chance level does not depend on the labels: a random scorer's ROC AUC (and the
# d' of that AUC), an event detector that predicts nothing (no true positives, every reference
# event deleted).
CONSTANT = {"aucroc": 0.5, "d_prime": 0.0, "event_onset_200ms_fms": 0.0,
            "event_onset_50ms_fms": 0.0, "event_onset_offset_50ms_20perc_fms": 0.0,
            "segment_1s_er": 1.0}


def _majority_share(keys: Sequence) -> Optional[float]:
    return Counter(keys).most_common(1)[0][1] / len(keys) if keys else None


def chance_level(metric: str, labels: Sequence[Sequence[str]],
                 vocabulary: Sequence[str]) -> Optional[float]:
    """Expected ``metric`` of an audio-blind predictor on test examples with these ``labels``
    (one list of label strings per example); None for a metric not known here, or without
    test labels.

    - ``top1_acc``, ``pitch_acc``: majority-class accuracy, the share of the most frequent
      (first) label.
    - ``chroma_acc``: the share of the most frequent chroma. heareval compares vocabulary
      indices modulo 12, which for a vocabulary of consecutive MIDI pitches is ``pitch % 12``
      (up to a rotation); the index is used, so the chance is that of the metric as scored.
    - ``mAP``: the mean, over the labels present, of their prevalence (share of examples that
      carry the label): the expected average precision of a random scorer.
    - the others: see ``CONSTANT``.
    """
    if metric in CONSTANT:
        return CONSTANT[metric]
    first = [example[0] for example in labels if example]
    if metric in ("top1_acc", "pitch_acc"):
        return _majority_share(first)
    if metric == "chroma_acc":
        index = {label: i for i, label in enumerate(vocabulary)}
        return _majority_share([index[label] % 12 for label in first])
    if metric == "mAP":
        present = Counter(label for example in labels for label in set(example))
        return sum(present.values()) / len(present) / len(labels) if present else None
    return None


def task_chance(task_dir: Union[str, Path], metrics: Sequence[str]) -> Dict[str, Optional[float]]:
    """``{metric: chance level}`` of a HEAR task directory, from its test split; a k-fold task's
    folds are pooled (every example is tested once, and a constant predictor's mean accuracy
    over equal folds is its accuracy on the pool)."""
    task = read_task(task_dir)
    splits = ["test"] if "test" in task.splits else task.splits
    labels = [value for split in splits for value in task.examples[split].values()]
    if not task.is_scene:  # event labels: the clip's events, for the label-based metrics
        labels = [[event["label"] for event in events] for events in labels]
    return {m: chance_level(m, labels, task.labels) for m in metrics}
