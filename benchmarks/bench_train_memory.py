"""Does training memory grow with the dataset? Peak memory and throughput of the streaming
trainers on a task of N and of 10 N clips.

    python benchmarks/bench_train_memory.py [--sizes 2000 20000] [--models ast kwmlp bagofcodes]
                                            [--tasks-dir DIR] [--steps 30] [--workers 2]

For each size it builds (or reuses, under ``--tasks-dir``) a HEAR multiclass scene task of
10-second 16 kHz clips: train holds ``size - 100`` clips, valid and test 50 each (the end-of-run
scoring of whole clips is not what is measured, so it is kept small). The clips are hard links
to a pool of 200 distinct synthetic ones (10 classes of tones and noise), so the 20,000-clip task
costs 64 MB of disk instead of 6.4 GB; the trainers open every file as its own clip. With
``--task-dir-for SIZE=DIR`` a real task is used instead.

Each model trains in a fresh process (``hear-suite train MODEL ... --max-steps STEPS``); the
memory figure is the peak over the run of the summed proportional set size (PSS, Linux
``/proc/<pid>/smaps_rollup``) of the trainer and its DataLoader workers, so pages the workers
share with the parent are counted once. Printed per model: peak memory at each size, the ratio
large / small (target <= 1.25: memory does not grow with the dataset), and training throughput
in clips (bag-of-codes: view vectors) per second from the run's own training time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hear_suite.checkpoint import load_checkpoint  # noqa: E402
from hear_suite.tasks import TaskWriter, write_json_atomic  # noqa: E402

SR, SECONDS, POOL, CLASSES, HELD_OUT = 16000, 10.0, 200, 10, 50
TRAIN_ARGS = {
    "ast": ["--preset", "small", "--batch-size", "32", "--epochs", "1", "--swa-epochs", "0"],
    # batch 64, not the paper's 256: 30 steps then stay within one epoch of the small task
    "kwmlp": ["--batch-size", "64", "--epochs", "1"],
    "bagofcodes": ["--width", "256", "--epochs", "1", "--kmeans-vectors", "4096",
                   "--codebook-size", "64"],
}
WEIGHTS = {"ast": "ast_conditional.pt", "kwmlp": "kwmlp.pt", "bagofcodes": "bagofcodes.pt"}


# ---------------------------------------------------------------------------------------------
# tasks


def pool_clip(k: int, rng: np.random.Generator) -> np.ndarray:
    """Clip ``k`` of the pool: class ``k % 10``, a tone at a class-specific pitch over noise."""
    t = np.arange(int(SR * SECONDS)) / SR
    f = 200.0 * 2 ** ((k % CLASSES) / 2)
    return (0.3 * np.sin(2 * np.pi * f * rng.uniform(0.98, 1.02) * t)
            + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def build_task(root: Path, size: int) -> Path:
    """A ``size``-clip task of hard links to the pool (kept if it already exists)."""
    name = f"bench_{size}"
    task_dir = root / f"{name}-v1-full"
    if (task_dir / "task_metadata.json").is_file():
        return task_dir
    rng = np.random.default_rng(0)
    pool_dir = root / f".pool-{name}"
    with TaskWriter(pool_dir, task_name=name, embedding_type="scene",
                    prediction_type="multiclass", sample_duration=SECONDS,
                    evaluation=["top1_acc"]) as w:
        for k in range(POOL):
            split = ("train", "valid", "test")[k % 3] if k < 3 * CLASSES else "train"
            w.add(split, f"pool{k:03d}", pool_clip(k, rng), [f"c{k % CLASSES}"])
    pool = sorted((pool_dir / f"{name}-v1-full" / str(SR)).rglob("*.wav"))
    tmp = root / f".{name}.partial"
    counts = {"train": size - 2 * HELD_OUT, "valid": HELD_OUT, "test": HELD_OUT}
    for split, n in counts.items():
        (tmp / str(SR) / split).mkdir(parents=True, exist_ok=True)
        entries = {}
        for i in range(n):
            src = pool[i % len(pool)]
            stem = f"{split}{i:06d}.wav"
            dst = tmp / str(SR) / split / stem
            if not dst.exists():
                os.link(src, dst)
            entries[stem] = [f"c{int(src.stem[4:]) % CLASSES}"]
        write_json_atomic(tmp / f"{split}.json", entries)
    src_dir = pool_dir / f"{name}-v1-full"
    for f in ("task_metadata.json", "labelvocabulary.csv"):
        (tmp / f).write_bytes((src_dir / f).read_bytes())
    os.replace(tmp, task_dir)
    return task_dir


# ---------------------------------------------------------------------------------------------
# memory of a process tree


def _children(pid: int) -> List[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_pss_mb(pid: int) -> float:
    """Summed PSS of ``pid`` and all its descendants, MB."""
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
        todo += _children(p)
    return total_kb / 1024


def run_and_watch(cmd: List[str], log: Path) -> Dict[str, float]:
    """Run ``cmd``, sampling the tree's PSS every 0.1 s; peak MB and wall seconds."""
    peak = [0.0]
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))

        def watch() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_pss_mb(proc.pid))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rc = proc.wait()
        watcher.join()
    if rc:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {rc}); log: {log}\n"
                         + log.read_text()[-3000:])
    return {"peak_mb": peak[0], "wall_s": time.perf_counter() - start}


def train_once(model: str, task: Path, out: Path, args: argparse.Namespace) -> Dict[str, float]:
    data = ["--audio", str(task)] if model == "bagofcodes" else ["--task-dir", str(task)]
    cmd = [sys.executable, "-m", "hear_suite.cli", "train", model, *data, "--out", str(out),
           "--restart", "--max-steps", str(args.steps), "--workers", str(args.workers),
           "--device", "cpu", *TRAIN_ARGS[model]]
    fig = run_and_watch(cmd, out.with_suffix(".log"))
    prov = load_checkpoint(out / WEIGHTS[model], model)["provenance"]
    seconds = prov.get("autoencoder_time_s", prov.get("train_time_s"))
    fig.update(train_s=float(seconds), items_per_s=args.steps * batch_size(model) / float(seconds))
    return fig


def batch_size(model: str) -> int:
    """Clips per optimizer step (bag-of-codes: view vectors, 256 per view by default)."""
    flags = TRAIN_ARGS[model]
    return int(flags[flags.index("--batch-size") + 1]) if "--batch-size" in flags else 256 * 4


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs=2, default=[2000, 20000])
    p.add_argument("--models", nargs="+", choices=sorted(TRAIN_ARGS),
                   default=["ast", "kwmlp", "bagofcodes"])
    p.add_argument("--tasks-dir", type=Path, default=None,
                   help="where the tasks are built / reused (default: a temporary folder)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if min(args.sizes) <= 2 * HELD_OUT:
        raise SystemExit(f"--sizes must be > {2 * HELD_OUT} (valid and test hold "
                         f"{HELD_OUT} clips each)")

    with tempfile.TemporaryDirectory() as tmp:
        root = args.tasks_dir or Path(tmp) / "tasks"
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tasks = {n: build_task(root, n) for n in args.sizes}
        for model in args.models:
            if model != "bagofcodes" and args.steps * batch_size(model) > min(args.sizes) - 100:
                print(f"note: {args.steps} steps of {model} are more than one epoch of the "
                      f"small task: its run also validates at epoch ends", flush=True)
        print(f"tasks {', '.join(str(n) for n in args.sizes)} clips of {SECONDS:g} s in "
              f"{time.perf_counter() - t0:.1f} s under {root}", flush=True)
        results: Dict[str, Dict[int, Dict[str, float]]] = {}
        for model in args.models:
            results[model] = {}
            for n in args.sizes:
                results[model][n] = train_once(model, tasks[n], Path(tmp) / f"{model}_{n}", args)
                r = results[model][n]
                print(f"{model:<10} {n:>6} clips: peak {r['peak_mb']:7.0f} MB, "
                      f"{r['items_per_s']:8.1f} {'vectors' if model == 'bagofcodes' else 'clips'}"
                      f"/s training, {r['wall_s']:.0f} s in all", flush=True)
    small, large = args.sizes
    print(f"\npeak memory, {large} vs {small} clips (target ratio <= 1.25):")
    for model, by_size in results.items():
        ratio = by_size[large]["peak_mb"] / by_size[small]["peak_mb"]
        print(f"  {model:<10} {by_size[small]['peak_mb']:7.0f} MB -> "
              f"{by_size[large]['peak_mb']:7.0f} MB  ratio {ratio:.2f} "
              f"{'ok' if ratio <= 1.25 else 'ABOVE TARGET'}")
    if args.json:
        from hear_suite.tasks import write_atomic

        write_atomic(args.json, json.dumps({m: {str(n): r for n, r in v.items()}
                                            for m, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
