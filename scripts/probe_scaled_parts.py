"""The same heareval probes on parts of an embedding, sliced and scaled (results/real_suite.md,
"How the parts are scaled"). Takes the embedding directories `hear-suite eval` wrote for one run
(OUT/embeddings/<run>/<module dir>/<task>), writes a copy whose embeddings are the chosen
columns, each scaled or transformed, and runs heareval's predictions on it with the config's
grid; prints each task's test scores.

    python scripts/probe_scaled_parts.py runs/real_suite/embeddings/hear_suite.kwmlp__embedding-2level-mel/*/ \
        --tasks real_speaker_id-v1-full gen_sound_events-v1-full \
        --scene "0:256,256:*0.25" --timestamp "0:128,128:*0.25" --out runs/parts/mel_quarter

A part is ``start:stop`` (columns; an empty stop is the end) with optional ``*scale`` and
``!log1p`` / ``!sqrt`` (applied before the scale); parts are separated by commas.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

Part = Tuple[int, Optional[int], float, Optional[Callable[[np.ndarray], np.ndarray]]]
TRANSFORMS = {"log1p": np.log1p, "sqrt": np.sqrt}


def parse_parts(spec: str) -> List[Part]:
    parts = []
    for item in spec.split(","):
        match = re.fullmatch(r"(\d*):(\d*)((?:[*!][^*!]+)*)", item.strip())
        if not match:
            raise SystemExit(f"bad part {item!r}: start:stop[*scale][!transform]")
        start, stop, mods = match.groups()
        scale, transform = 1.0, None
        for mod in re.findall(r"[*!][^*!]+", mods):
            if mod[0] == "*":
                scale = float(mod[1:])
            elif mod[1:] in TRANSFORMS:
                transform = TRANSFORMS[mod[1:]]
            else:
                raise SystemExit(f"unknown transform {mod[1:]!r}; one of {sorted(TRANSFORMS)}")
        parts.append((int(start or 0), int(stop) if stop else None, scale, transform))
    return parts


def derive(src: Path, dst: Path, parts: List[Part]) -> None:
    """``dst``: ``src``'s task files (hard links) and its split embeddings made of ``parts``."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        keep = f.is_file() and not f.name.endswith((".embeddings.npy",
                                                    ".embedding-dimensions.json"))
        if keep and "predict" not in f.name:
            os.link(f, dst / f.name)
    for dims_file in src.glob("*.embedding-dimensions.json"):
        split = dims_file.name[:-len(".embedding-dimensions.json")]
        shape = tuple(json.loads(dims_file.read_text()))
        x = np.memmap(src / f"{split}.embeddings.npy", dtype=np.float32, mode="r", shape=shape)
        cols = []
        for start, stop, scale, transform in parts:
            c = np.asarray(x[:, start:stop], dtype=np.float64)
            cols.append((transform(c) if transform else c) * scale)
        y = np.concatenate(cols, axis=1).astype(np.float32)
        out = np.memmap(dst / f"{split}.embeddings.npy", dtype=np.float32, mode="w+",
                        shape=y.shape)
        out[:] = y
        out.flush()
        (dst / dims_file.name).write_text(json.dumps(list(y.shape)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="OUT/embeddings/<run>/<module dir>")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--scene", default="0:", help="parts of scene embeddings")
    parser.add_argument("--timestamp", default="0:", help="parts of timestamp embeddings")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grid", default="demo")
    parser.add_argument("--grid-points", type=int, default=2)
    args = parser.parse_args()
    dirs = []
    for task in args.tasks:
        src = args.run_dir / task
        kind = json.loads((src / "task_metadata.json").read_text())["embedding_type"]
        derive(src, args.out / task, parse_parts(args.scene if kind == "scene" else args.timestamp))
        dirs.append(args.out / task)
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    with open(args.out / "predict.log", "w") as log:
        rc = subprocess.call([sys.executable, "-m", "hear_suite.evaluation.heareval_compat",
                              "predict", *map(str, dirs), "--grid", args.grid,
                              "--grid-points", str(args.grid_points)],
                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=args.out)
    for d in dirs:
        scores = d / "test.predicted-scores.json"
        if scores.exists():
            test = json.loads(scores.read_text())["test"]
            print(d.name, {k[len("test_"):]: round(v, 3) for k, v in test.items()
                           if k.startswith("test_") and k != "test_loss"})
        else:
            print(d.name, f"no scores (see {args.out / 'predict.log'})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
