"""Which middle depth adds most to a model's final level? (results/real_suite.md, "Choosing the
middle depth".) For each candidate depth, scene embeddings of ``embedding="2level"`` with that
``middle_depth`` on the train and test clips of each task; a logistic regression on standardised
features scores the final level, each middle level alone and final + middle (test accuracy).

    python scripts/middle_depth_probe.py kwmlp 3 6 9 --tasks-dir data/suite
    python scripts/middle_depth_probe.py ast 1 2 3 --tasks-dir data/suite
    python scripts/middle_depth_probe.py bagofcodes 1 2 3 --tasks-dir data/suite

A quick probe (seconds per task and depth, one CPU thread), not heareval's: it ranks depths
before the full runs of scripts/eval_variants.sh.
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

TASKS = ("real_speaker_id", "real_instrument_pitch", "real_drum_pieces", "real_sound_kinds",
         "gen_spoken_words", "gen_instrument_pitch")


def read_split(task_dir: Path, split: str) -> Tuple[List[np.ndarray], List[str]]:
    """Audio at 16 kHz and the first label of every clip of a HEAR scene task's split."""
    labels = json.loads((task_dir / f"{split}.json").read_text())
    audio = [sf.read(task_dir / "16000" / split / name, dtype="float32")[0] for name in labels]
    return audio, [lab[0] for lab in labels.values()]


def scenes(hear, model, clips: List[np.ndarray]) -> np.ndarray:
    return np.stack([hear.get_scene_embeddings(torch.from_numpy(a)[None], model)[0].numpy()
                     for a in clips])


def accuracy(train: np.ndarray, y_train, test: np.ndarray, y_test) -> float:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    return float(probe.fit(train, y_train).score(test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("family", choices=("kwmlp", "ast", "bagofcodes"))
    parser.add_argument("depths", type=int, nargs="+", help="candidate middle depths")
    parser.add_argument("--tasks-dir", type=Path, required=True)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    hear = importlib.import_module(f"hear_suite.{args.family}")
    models = {d: hear.load_model(embedding="2level", middle_depth=d) for d in args.depths}
    final = hear.load_model()
    results: Dict[str, Dict[str, float]] = {}
    for task in tqdm(args.tasks, desc="tasks"):
        (x_tr, y_tr), (x_te, y_te) = (read_split(args.tasks_dir / f"{task}-v1-full", s)
                                      for s in ("train", "test"))
        f_tr, f_te = scenes(hear, final, x_tr), scenes(hear, final, x_te)
        row = {"final": accuracy(f_tr, y_tr, f_te, y_te)}
        for d, model in models.items():
            # 2level's scene begins with final's; the rest is the middle level's
            m_tr = scenes(hear, model, x_tr)[:, f_tr.shape[1]:]
            m_te = scenes(hear, model, x_te)[:, f_te.shape[1]:]
            row[f"middle {d}"] = accuracy(m_tr, y_tr, m_te, y_te)
            row[f"final + middle {d}"] = accuracy(np.hstack([f_tr, m_tr]), y_tr,
                                                  np.hstack([f_te, m_te]), y_te)
        results[task] = row
        tqdm.write(f"{task}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    keys = list(next(iter(results.values())))
    print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in results.values()]):.3f}"
                               for k in keys))


if __name__ == "__main__":
    main()
