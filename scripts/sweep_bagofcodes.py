"""Sweep the paper's classifier grid (Verma, Figures 2 and 3) on a generated multilabel task.

    python scripts/sweep_bagofcodes.py --corpus TRAIN_TASK --task-dir EVAL_TASK --out results \
        [--model weights/bagofcodes.pt] [--sizes 16,64,256,1024] [--hidden 256,512,4096] \
        [--dropouts 0.1,0.4] [--mask 0,0.1,0.2,0.35,0.5] [--epochs 40] [--save-models DIR]

1. Code books of every size D: the shipped autoencoders are kept; k-means is refitted on their
   bottleneck vectors of the training corpus (``--corpus``) for each D other than the model's.
2. The bag of codes of every second of the evaluation task (``--task-dir``, a multilabel scene
   task with train/valid/test) for each D (cached in ``OUT/sweep_cache/``).
3. Figure 2: a head (2 x hidden units, dropout) for every D x hidden x dropout, no masking.
   Figure 3: the best of those (by validation clip mAP) with input-code masking p in ``--mask``.
   The test split's 1 s mAP and clip mAP of each head (best validation epoch) are reported.

Writes ``OUT/bagofcodes_sweep.csv``, ``OUT/bagofcodes_sweep.md`` (tables) and
``OUT/bagofcodes_sweep.png`` (the two figures).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path
from typing import Dict, List

import torch

from hear_suite import checkpoint, training
from hear_suite.bagofcodes import head as H
from hear_suite.bagofcodes import codebooks
from hear_suite.bagofcodes import train as T
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder
from hear_suite.bagofcodes.io import load_bagofcodes, save_bagofcodes
from hear_suite.bagofcodes.model import VIEWS, BagOfCodes
from hear_suite.tasks import read_task


def floats(s: str) -> List[float]:
    return [float(v) for v in s.split(",")]


def ints(s: str) -> List[int]:
    return [int(v) for v in s.split(",")]


def models_per_size(base: BagOfCodes, corpus: List[Path], sizes: List[int], max_vectors: int,
                    seed: int) -> Dict[int, BagOfCodes]:
    """``{D: model}``: the base model's encoders with k-means code books of size D."""
    config = base.config
    out: Dict[int, BagOfCodes] = {}
    z = None
    for d in sizes:
        if d == config.codebook_size:
            out[d] = base
            continue
        if z is None:
            specs, _ = T.spectrograms(T.audio_files(corpus), base.frontend, config,
                                      torch.device("cpu"))
            specs = [(s - base.mel_mean) / base.mel_std for s in specs]
            z = {v: codebooks.bottleneck_vectors(base.encoders, specs, config, v) for v in VIEWS}
        model = BagOfCodes(dataclasses.replace(config, codebook_size=d)).eval()
        model.encoders.load_state_dict(base.encoders.state_dict())
        model.mel_mean.copy_(base.mel_mean)
        model.mel_std.copy_(base.mel_std)
        for i, v in enumerate(VIEWS):
            c, _ = codebooks.fit_codebook(z[v], size=d, seed=training.derive_seed(seed, i),
                                  max_vectors=max_vectors, minibatch_above=20_000)
            model.codebooks[v].centroids.copy_(torch.from_numpy(c))
        out[d] = model
        print(f"code books D={d} fitted", flush=True)
    return out


def plot(rows: List[Dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    grid = [r for r in rows if r["stage"] == "grid"]
    for hidden in sorted({r["hidden"] for r in grid}):
        for dropout in sorted({r["dropout"] for r in grid}):
            pts = sorted((r["D"], r["test_chunk_map"]) for r in grid
                         if r["hidden"] == hidden and r["dropout"] == dropout)
            ax.plot(*zip(*pts), marker="o", label=f"{hidden} units, dropout {dropout}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("code book size D")
    ax.set_ylabel("test mAP (1 s chunks)")
    ax.set_title("Fig. 2: code book size and head")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    ax = fig.add_subplot(1, 2, 2)
    mask = sorted((r["mask_p"], r["test_chunk_map"], r["test_clip_map"]) for r in rows
                  if r["stage"] == "mask")
    if mask:
        ax.plot([m[0] for m in mask], [m[1] for m in mask], marker="o", label="1 s mAP")
        ax.plot([m[0] for m in mask], [m[2] for m in mask], marker="s", label="clip mAP")
        best = next(r for r in rows if r["stage"] == "mask")
        ax.set_title(f"Fig. 3: input-code masking (D={best['D']}, {best['hidden']} units, "
                     f"dropout {best['dropout']})", fontsize="small")
    ax.set_xlabel("masking probability p")
    ax.set_ylabel("test mAP")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, nargs="+", required=True,
                   help="audio the code books are fitted on (task dirs or wav folders)")
    p.add_argument("--task-dir", type=Path, required=True, help="multilabel scene task")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--model", type=Path, default=None, help="default: shipped weights")
    p.add_argument("--sizes", type=ints, default=[16, 64, 256, 1024])
    p.add_argument("--hidden", type=ints, default=[256, 512, 4096])
    p.add_argument("--dropouts", type=floats, default=[0.1, 0.4])
    p.add_argument("--mask", type=floats, default=[0.0, 0.1, 0.2, 0.35, 0.5])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--kmeans-vectors", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-models", type=Path, default=None,
                   help="also write each D's model as DIR/bagofcodes_D<D>.pt (loadable)")
    args = p.parse_args()

    t0 = time.perf_counter()
    model_path = args.model or checkpoint.default_weights("bagofcodes.pt")
    base = load_bagofcodes(model_path)
    task = read_task(args.task_dir, sample_rate=16000)
    if not task.is_multilabel:
        raise SystemExit(f"{task.name} is not a multilabel task")
    cache = args.out / "sweep_cache"
    cache.mkdir(parents=True, exist_ok=True)
    models = models_per_size(base, args.corpus, args.sizes, args.kmeans_vectors, args.seed)
    for d, model in models.items() if args.save_models else ():
        save_bagofcodes(args.save_models / f"bagofcodes_D{d}.pt", model, half=True, provenance={
            "made_by": "scripts/sweep_bagofcodes.py", "encoders_from": str(model_path),
            "codebook_size": d, "kmeans_vectors": args.kmeans_vectors, "seed": args.seed})
    feats = {}
    for d, model in models.items():
        key = f"{Path(model_path).resolve()}:{Path(model_path).stat().st_mtime_ns}:D{d}:{args.seed}"
        feats[d] = H.task_features(task, BagOfCodesEmbedder(model), key,
                                   cache / f"features_D{d}.pt")
    print(f"features ready ({time.perf_counter() - t0:.0f} s): "
          + ", ".join(f"{s} {len(f.x)} s" for s, f in feats[args.sizes[0]].items()), flush=True)

    train, valid, test = H.split_names(task)
    per_unit = [base.config.per_unit[v] for v in VIEWS]
    rows: List[Dict] = []

    def run(stage: str, d: int, hidden: int, dropout: float, mask_p: float) -> Dict:
        _, scores = H.train_head(
            feats[d], train=train, valid=valid, test=test, multilabel=True, codebook_size=d,
            per_unit=per_unit, hidden=hidden, dropout=dropout, mask_p=mask_p,
            epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, weight_decay=1e-4,
            seed=args.seed)
        row = {"stage": stage, "D": d, "hidden": hidden, "dropout": dropout, "mask_p": mask_p,
               "best_epoch": scores["best_epoch"],
               "valid_clip_map": round(scores["valid"]["clip_map"], 4),
               "test_chunk_map": round(scores["test"]["chunk_map"], 4),
               "test_clip_map": round(scores["test"]["clip_map"], 4)}
        print(row, flush=True)
        rows.append(row)
        return row

    for d in args.sizes:
        for hidden in args.hidden:
            for dropout in args.dropouts:
                run("grid", d, hidden, dropout, 0.0)
    best = max(rows, key=lambda r: r["valid_clip_map"])
    for mask_p in args.mask:
        run("mask", best["D"], best["hidden"], best["dropout"], mask_p)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bagofcodes_sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = list(rows[0])
    corpus = ", ".join(f"`{c}`" for c in args.corpus)
    lines = [f"# Bag-of-codes classifier sweep on `{task.name}`", "",
             f"Model `{model_path}`; code books refitted per D on {corpus}; heads trained "
             f"{args.epochs} epochs (best validation clip mAP kept), seed {args.seed}. "
             f"Total time {time.perf_counter() - t0:.0f} s.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (args.out / "bagofcodes_sweep.md").write_text("\n".join(lines) + "\n")
    plot(rows, args.out / "bagofcodes_sweep.png")
    print(f"wrote {args.out}/bagofcodes_sweep.(csv|md|png)")


if __name__ == "__main__":
    main()
