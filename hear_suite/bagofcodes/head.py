"""``hear-suite train bagofcodes-head``: the paper's classifier over bags of codes.

    hear-suite train bagofcodes-head --task-dir TASK --out RUN [--model weights.pt]
        [--hidden 512 --dropout 0.4 --mask-p 0.35 --epochs 60 ...]

On a HEAR scene task (multilabel or multiclass): every clip is cut into seconds (those of the
scene embedding: consecutive seconds, the last one aligned with the end, clips under a second
zero-padded) and each second's raw ``4 x D`` bag of codes is a training example carrying the
clip's labels. The head is a 2-layer MLP (``--hidden`` units, ReLU, ``--dropout``) with sigmoid
outputs and Huber loss (multilabel; the paper's choice) or softmax and cross-entropy (multiclass).
While training, each count of the input is set to 0 with probability ``--mask-p`` (the paper's
input-code masking). Counts are fed divided by their view's total per second (120, 12, 10, 1), so
each view weighs the same; masking is applied before that scaling.

Scores: the chunk ("1 s") mAP over all seconds, and the clip mAP of the mean of each clip's
chunk probabilities (plus top-1 accuracy for multiclass). The epoch with the best validation clip
score (mAP or accuracy) is kept and scored on the test split. Run directory: ``features.pt``
(the cached bags of codes, reused by reruns with the same model), ``metrics.csv``, ``curves.png``,
``head.pt`` (weights, config and scores) and ``scores.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import checkpoint
from hear_suite.bagofcodes.embedder import BagOfCodesEmbedder
from hear_suite.bagofcodes.io import load_bagofcodes
from hear_suite.bagofcodes.model import VIEWS
from hear_suite.tasks import Task, load_wav, read_task
from hear_suite.training.args import add_run_arguments, plain_args
from hear_suite.training.distributed import select_device
from hear_suite.training.metrics import log, MetricsLog, plot_curves, progress
from hear_suite.training.seeding import seed_everything
from hear_suite.training.state import RunDir

FAMILY = "bagofcodes-head"
CURVES = {"loss": ["train_loss"], "clip score (valid)": ["valid_clip_map", "valid_clip_acc"],
          "1 s mAP (valid)": ["valid_chunk_map"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-dir", type=Path, required=True, help="HEAR scene task")
    parser.add_argument("--model", type=Path, default=None,
                        help="bagofcodes checkpoint (default: the shipped weights)")
    add_run_arguments(parser)
    g = parser.add_argument_group("head (defaults: the paper's best)")
    g.add_argument("--hidden", type=int, default=512, help="units of each of the 2 layers")
    g.add_argument("--dropout", type=float, default=0.4)
    g.add_argument("--mask-p", type=float, default=0.35,
                   help="probability of zeroing each input count while training")
    g.add_argument("--epochs", type=int, default=60)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--weight-decay", type=float, default=1e-4)


# ---------------------------------------------------------------------------------------------
# features


@dataclass
class ChunkSet:
    """The seconds of one split: ``x (N, 4 D)`` raw counts, ``y (N, C)`` the clip's labels (0/1),
    ``clip (N,)`` the clip index of each second; ``clip_y (M, C)`` per clip."""

    x: Tensor
    y: Tensor
    clip: Tensor
    clip_y: Tensor


def split_names(task: Task) -> Tuple[List[str], str, str]:
    """(train splits, valid split, test split): train/valid/test, or for k-fold tasks fold 0 as
    test, fold 1 as valid and the others as train (heareval's first fold)."""
    if {"train", "valid", "test"} <= set(task.splits):
        return ["train"], "valid", "test"
    folds = task.splits
    if len(folds) < 3:
        raise ValueError(f"{task.name}: needs train/valid/test or at least 3 folds")
    return folds[2:], folds[1], folds[0]


@torch.no_grad()
def embed_split(task: Task, split: str, embedder: BagOfCodesEmbedder) -> ChunkSet:
    index = task.label_index()
    xs, ys, clips, clip_ys = [], [], [], []
    for i, path in enumerate(progress(sorted(task.examples[split]),
                                               desc=f"bags of codes {split}", leave=False)):
        labels = torch.zeros(len(task.labels))
        labels[[index[label] for label in task.examples[split][path]]] = 1.0
        audio = torch.from_numpy(load_wav(path))[None]
        h = embedder.second_histograms(audio)[0].cpu()
        xs.append(h)
        ys.append(labels.expand(len(h), -1))
        clips.append(torch.full((len(h),), i))
        clip_ys.append(labels)
    return ChunkSet(torch.cat(xs), torch.cat(ys), torch.cat(clips), torch.stack(clip_ys))


def task_features(task: Task, embedder: BagOfCodesEmbedder, model_key: str,
                  cache: Optional[Path]) -> Dict[str, ChunkSet]:
    """Bags of codes of every split, cached in ``cache`` under ``model_key``."""
    if cache is not None and cache.is_file():
        saved = checkpoint.load_file(cache)
        if saved.get("key") == model_key:
            return {s: ChunkSet(**v) for s, v in saved["splits"].items()}
    feats = {s: embed_split(task, s, embedder) for s in task.splits}
    if cache is not None:
        checkpoint.save_atomic({"key": model_key, "splits": {s: vars(c) for s, c in feats.items()}},
                               cache)
    return feats


# ---------------------------------------------------------------------------------------------
# head


class Head(nn.Module):
    """``(B, 4 D)`` counts -> logits ``(B, C)``: 2 hidden layers of ``hidden`` units."""

    def __init__(self, *, codebook_size: int, num_classes: int, hidden: int,
                 dropout: float, per_unit: Sequence[int]) -> None:
        super().__init__()
        scale = torch.tensor([1.0 / n for n in per_unit]).repeat_interleave(codebook_size)
        self.register_buffer("scale", scale)
        self.mlp = nn.Sequential(
            nn.Linear(len(VIEWS) * codebook_size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, counts: Tensor) -> Tensor:
        return self.mlp(counts * self.scale)


def mask_codes(x: Tensor, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Each count set to 0 with probability ``p`` (the paper's input-code masking)."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep.to(x.device, x.dtype)


def mean_ap(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the classes with at least one positive."""
    from sklearn.metrics import average_precision_score

    cols = y.sum(0) > 0
    return float(average_precision_score(y[:, cols], scores[:, cols], average="macro"))


@torch.no_grad()
def score(head: Head, data: ChunkSet, multilabel: bool) -> Dict[str, float]:
    head.eval()
    logits = head(data.x)
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
    n_clips = len(data.clip_y)
    clip_probs = torch.zeros(n_clips, probs.shape[1]).index_add_(0, data.clip, probs)
    clip_probs /= torch.bincount(data.clip, minlength=n_clips).clamp(min=1)[:, None].float()
    out = {"chunk_map": mean_ap(data.y.numpy(), probs.numpy()),
           "clip_map": mean_ap(data.clip_y.numpy(), clip_probs.numpy())}
    if not multilabel:
        out["chunk_acc"] = float((probs.argmax(1) == data.y.argmax(1)).float().mean())
        out["clip_acc"] = float((clip_probs.argmax(1) == data.clip_y.argmax(1)).float().mean())
    return out


def train_head(feats: Dict[str, ChunkSet], *, train: Sequence[str], valid: str, test: str,
               multilabel: bool, codebook_size: int, per_unit: Sequence[int], hidden: int,
               dropout: float, mask_p: float, epochs: int, batch_size: int, lr: float,
               weight_decay: float, seed: int,
               on_epoch=None) -> Tuple[Head, Dict[str, Any]]:
    """Train a head, keep the best-validation epoch; returns it and its scores."""
    seed_everything(seed)
    x = torch.cat([feats[s].x for s in train])
    y = torch.cat([feats[s].y for s in train])
    head = Head(codebook_size=codebook_size, num_classes=y.shape[1], hidden=hidden,
                dropout=dropout, per_unit=per_unit)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    key = "clip_map" if multilabel else "clip_acc"
    best, best_state, best_epoch = -math.inf, None, 0
    for epoch in range(epochs):
        head.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for b in order.split(batch_size):
            logits = head(mask_codes(x[b], mask_p, gen))
            if multilabel:
                loss = F.huber_loss(torch.sigmoid(logits), y[b])
            else:
                loss = F.cross_entropy(logits, y[b].argmax(1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        valid_scores = score(head, feats[valid], multilabel)
        if valid_scores[key] > best:
            best, best_epoch = valid_scores[key], epoch + 1
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        if on_epoch is not None:
            on_epoch(epoch + 1, total / len(x), valid_scores)
    head.load_state_dict(best_state)
    return head, {"best_epoch": best_epoch, "valid": score(head, feats[valid], multilabel),
                  "test": score(head, feats[test], multilabel)}


# ---------------------------------------------------------------------------------------------
# command


def main(args: argparse.Namespace) -> int:
    if not 0.0 <= args.mask_p < 1.0 or not 0.0 <= args.dropout < 1.0:
        raise SystemExit("--mask-p and --dropout must be in [0, 1)")
    out = Path(args.out)
    run_dir = RunDir(out, outputs=("head.pt", "scores.json"))
    run_dir.resolve("restart" if args.resume_mode == "restart" else "auto")
    task = read_task(args.task_dir, sample_rate=16000)
    if not task.is_scene:
        raise SystemExit(f"{task.name}: the bag-of-codes head trains on scene tasks")
    model_path = args.model or checkpoint.default_weights("bagofcodes.pt")
    device = select_device(args.device)
    embedder = BagOfCodesEmbedder(load_bagofcodes(model_path)).to(device)
    t0 = time.perf_counter()
    model_key = f"{Path(model_path).resolve()}:{Path(model_path).stat().st_mtime_ns}"
    feats = task_features(task, embedder, model_key, out / "features.pt")
    log(f"{task.name}: " + ", ".join(f"{s} {len(f.clip_y)} clips / {len(f.x)} s"
                                              for s, f in feats.items())
                 + f" ({time.perf_counter() - t0:.1f} s)")
    metrics = MetricsLog(run_dir.metrics)
    metrics.truncate(0)

    def on_epoch(epoch: int, loss: float, valid: Dict[str, float]) -> None:
        metrics.append({"epoch": epoch, "train_loss": loss,
                        **{f"valid_{k}": v for k, v in valid.items()}})

    train, valid, test = split_names(task)
    config = embedder.config
    head, scores = train_head(
        feats, train=train, valid=valid, test=test, multilabel=task.is_multilabel,
        codebook_size=config.codebook_size, per_unit=[config.per_unit[v] for v in VIEWS],
        hidden=args.hidden, dropout=args.dropout, mask_p=args.mask_p, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed,
        on_epoch=on_epoch)
    plot_curves(metrics.rows, run_dir.curves, CURVES)
    head_config = {"codebook_size": config.codebook_size, "labels": list(task.labels),
                   "hidden": args.hidden, "dropout": args.dropout,
                   "multilabel": task.is_multilabel}
    provenance = {"task": task.name, "model": str(model_path), "scores": scores,
                  "args": plain_args(args)}
    checkpoint.save_checkpoint(out / "head.pt", family=FAMILY, config=head_config,
                               state_dict=head.state_dict(), provenance=provenance)
    (out / "scores.json").write_text(json.dumps(scores, indent=1))
    test_scores = scores["test"]
    log(f"best epoch {scores['best_epoch']}: test 1 s mAP {test_scores['chunk_map']:.4f},"
                 f" clip mAP {test_scores['clip_map']:.4f}"
                 + (f", clip accuracy {test_scores['clip_acc']:.4f}"
                    if "clip_acc" in test_scores else ""))
    return 0
