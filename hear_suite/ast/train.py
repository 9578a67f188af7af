"""``hear-suite train ast``: train an AST from scratch on a HEAR scene task (seed 003's recipe).

    hear-suite train ast --task-dir TASK --out RUN --pe conditional [--preset medium ...]
    hear-suite train ast --task-dir TASK --out RUN --preset ast --imagenet deit_base.pth
    torchrun --nproc_per_node=N -m hear_suite.cli train ast --task-dir TASK --out RUN ...

Multilabel tasks train with BCE-with-logits and are scored by mAP (macro over the classes with a
positive example); multiclass tasks with cross-entropy and top-1 accuracy. The recipe, every
number a flag: AdamW (weight decay 0 by default, i.e. Adam as seed 003), gradient values clipped
to 1, per-step linear warm-up then cosine decay, SpecAugment time and frequency masks (on the normalised
log-mel as AST, or with ``--specaugment-on stft`` on the linear STFT power before the mel
filterbank as seed 003), mixup (with probability ``--mixup`` a batch is mixed with its reversal,
``lambda ~ Beta(a, a)``, labels mixed alike), and stochastic weight averaging: the shipped weights
are the mean of the weights after each of the last ``--swa-epochs`` epochs (seed 003 averaged its
last 10 checkpoints; ``--swa-epochs 0`` ships the best-valid epoch instead).

Data (streamed; nothing is held in memory): every draw of a training clip reads a random crop of
the model's window (``window_frames``, 3.2 s for the ``small`` and ``medium`` presets) from
anywhere in the clip, framed as :class:`hear_suite.ast.embedder.ASTEmbedder` frames audio (clips
shorter than a window are zero-padded; ``--crop start`` always takes the first window), in
``--workers`` reader processes; the frontend runs on the training device, mixup mixes the
waveforms. ``--balanced`` draws clips in proportion to the inverse frequency of their labels.
Validation and test score whole clips the way the HEAR embedder does: every window of the clip,
the CLS outputs averaged over them, then the head. The normalisation statistics of the training
log-mels (mean and standard deviation for AST's ``mean_std``, minimum and maximum for seed 003's
``unit_range``) come from the first windows of up to ``--norm-clips`` training clips and go into
the model's config. ``--max-steps``, ``--accumulate``, ``--precision bf16``, ``--compile`` and
mid-epoch checkpoints (``--checkpoint-every``): see :mod:`hear_suite.training`.

Run directory: ``metrics.csv``, ``curves.png``, ``last.pt`` (resumable; a rerun resumes),
``best.pt`` (best-valid epoch) and ``ast_<pe>.pt`` (shipped format, with provenance).

Length: over the package's guide of about 450 lines, as one concern, the AST's recipe: its
flags (every number of it), its streams and whole-clip evaluation, and the run loop that ties
them; the shared machinery is in :mod:`hear_suite.training` and :mod:`hear_suite.data`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import checkpoint, data
from hear_suite.ast.embedder import ASTEmbedder
from hear_suite.ast.imagenet import from_timm
from hear_suite.ast.io import FAMILY, save_encoder
from hear_suite.ast.model import AST, POS_EMBEDS, PRESETS, ASTConfig, num_parameters
from hear_suite.tasks import MULTILABEL, SCENE, Task, read_task
from hear_suite.version import __version__
from hear_suite.training.args import (add_run_arguments, micro_batch_size, plain_args,
                                      run_argument_problems)
from hear_suite.training.augment import (add_spec_augment_arguments, spec_augment_from_args,
                                         spec_augment_problems)
from hear_suite.training.distributed import (all_gather_objects, barrier, check_replicas_identical,
                                             DistInfo, run_distributed, wrap_ddp)
from hear_suite.training.metrics import log, MetricsLog, plot_curves
from hear_suite.training.schedules import DECAYS, WarmupDecayLR
from hear_suite.training.seeding import seed_everything
from hear_suite.training.sharding import split_rank
from hear_suite.training.state import load_training_state, resume, RunDir, save_run_state
from hear_suite.training.steps import (autocast, compiled, epoch_means, EpochPosition, Stepper,
                                       stop_now, train_epoch)

SPLITS = ("train", "valid", "test")
BEST = "best.pt"
CURVES = {"loss": ["train_loss", "valid_loss"], "validation score": ["valid_score"],
          "learning rate": ["lr"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-dir", type=Path, required=True,
                        help="HEAR scene task (multilabel or multiclass) with train/valid/test")
    add_run_arguments(parser)
    m = parser.add_argument_group("model")
    m.add_argument("--pe", choices=POS_EMBEDS, default="conditional", help="positional encoding")
    m.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="base configuration (small: 4 x 128, the tests' size; medium: 4 x 256, "
                        "the shipped models; medium_128: medium on 128 mel bands; ast_pe: seed "
                        "003; ast: AST / seed 002)")
    for name in ("dim", "depth", "heads", "ff_dim", "peg_blocks", "window_frames"):
        m.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"override the preset's {name}")
    m.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    m.add_argument("--imagenet", type=Path, default=None,
                   help="initialise from a local timm DeiT/ViT checkpoint (patch 16; e.g. with "
                        "--preset ast); nothing is downloaded")
    m.add_argument("--kernel-reduce", choices=("sum", "mean"), default="sum",
                   help="RGB patch kernel to one channel (AST code: sum; seed 002: mean)")
    d = parser.add_argument_group("data")
    d.add_argument("--crop", choices=data.CROP_MODES, default="random",
                   help="training window: a random one anywhere in the clip, or the first")
    d.add_argument("--balanced", action="store_true",
                   help="draw clips by the inverse frequency of their labels (AudioSet/FSD50K "
                        "practice) instead of each clip once per epoch")
    d.add_argument("--norm-clips", type=int, default=2000,
                   help="training clips whose first windows give the normalisation statistics")
    g = parser.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=40)
    g.add_argument("--batch-size", type=int, default=32,
                   help="global batch of one optimizer step, split over processes and "
                        "--accumulate micro-batches")
    g.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (seed 003: 5e-4)")
    g.add_argument("--warmup-epochs", type=float, default=3)
    g.add_argument("--decay", choices=DECAYS, default="cosine",
                   help="after warm-up: cosine to 0, or seed 003's 1/sqrt(step)")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--clip-value", type=float, default=1.0,
                   help="clip every gradient value to +-this (0: off)")
    g.add_argument("--mixup", type=float, default=0.5,
                   help="probability that a micro-batch's waveforms are mixed")
    g.add_argument("--mixup-alpha", type=float, default=10.0, help="lambda ~ Beta(a, a)")
    add_spec_augment_arguments(
        g, time_width=48, freq_width=12,
        freq_help="max bins per mask (mel bins, or STFT bins with --specaugment-on stft)")
    g.add_argument("--specaugment-on", choices=("log_mel", "stft"), default="log_mel",
                   help="mask the normalised log-mel (AST) or the linear STFT power before the "
                        "mel filterbank (seed 003: --freq-mask-width 64 --time-mask-width 100)")
    g.add_argument("--swa-epochs", type=int, default=5,
                   help="ship the mean of the last N epochs' weights (0: the best-valid epoch)")
    parser.add_argument("--evaluate", type=Path, default=None, metavar="WEIGHTS",
                        help="train nothing: score an AST weights file on the task's valid and "
                             "test splits as training does (whole clips) into OUT/scores.json")


# ---------------------------------------------------------------------------------------------
# data


def open_task(task_dir: Path, sample_rate: int) -> Task:
    task = read_task(task_dir, sample_rate=sample_rate)
    if task.metadata["embedding_type"] != SCENE:
        raise ValueError(f"{task.name}: AST trains on scene tasks, this is an event task "
                         f"(embedding_type {task.metadata['embedding_type']!r})")
    missing = [s for s in SPLITS if s not in task.examples]
    if missing:
        raise ValueError(f"{task.name}: needs train/valid/test splits, has {task.splits}")
    if not task.examples["train"]:
        raise ValueError(f"{task.name}: the train split is empty")
    return task


class Split:
    """One split's clips (sorted paths) and their label indices."""

    def __init__(self, task: Task, split: str) -> None:
        index = task.label_index()
        self.paths = sorted(task.examples[split])
        self.labels = [[index[label] for label in task.examples[split][p]] for p in self.paths]
        self.n_classes = len(task.labels)

    def __len__(self) -> int:
        return len(self.paths)

    def targets(self, indices: Tensor, multilabel: bool) -> Tensor:
        """Multi-hot ``(B, C)`` float (multilabel) or one-hot ``(B, C)`` (multiclass, so mixup
        can mix it) of clips ``indices``."""
        y = torch.zeros(len(indices), self.n_classes)
        for row, i in enumerate(indices.tolist()):
            y[row, self.labels[i] if multilabel else self.labels[i][:1]] = 1.0
        return y


@torch.no_grad()
def log_mel_statistics(split: Split, embedder: ASTEmbedder, *, n_clips: int, workers: int
                       ) -> Dict[str, float]:
    """Mean, standard deviation, minimum and maximum of the raw log-mels of the first windows of
    up to ``n_clips`` evenly spaced clips (streamed; float64 sums)."""
    pick = np.unique(np.linspace(0, len(split) - 1, min(n_clips, len(split))).round().astype(int))
    crop = data.Crop(embedder.window_samples, "start", pad_front=embedder.pad_front)
    clips = data.CroppedClips([split.paths[i] for i in pick], crop, embedder.sample_rate)
    sums = torch.zeros(3, dtype=torch.float64)
    lo, hi = float("inf"), float("-inf")
    for _, audio in data.loader(clips, data.fixed_draws(range(len(pick)), 64), workers=workers,
                                device=embedder.device,
                                collate_fn=data.stack_clips):
        x = embedder.frontend(audio.to(embedder.device)).double()
        sums += torch.stack([x.sum(), (x * x).sum(), torch.tensor(float(x.numel()))]).cpu()
        lo, hi = min(lo, x.min().item()), max(hi, x.max().item())
    mean = sums[0] / sums[2]
    std = ((sums[1] / sums[2] - mean ** 2) * sums[2] / (sums[2] - 1)).clamp(min=0).sqrt()
    return {k: float(f"{v:.6g}") for k, v in (("norm_mean", mean.item()),
                                               ("norm_std", std.item()),
                                               ("norm_min", lo), ("norm_max", hi))}


# ---------------------------------------------------------------------------------------------
# training and evaluation


def loss_fn(logits: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    """BCE with logits (multilabel) or cross-entropy against (mixed) class probabilities."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y)


def score(logits: Tensor, y: Tensor, multilabel: bool) -> float:
    """mAP (multilabel, macro over classes with a positive) or top-1 accuracy (``y`` one-hot)."""
    if not multilabel:
        return (logits.argmax(1) == y.argmax(1)).float().mean().item()
    from sklearn.metrics import average_precision_score

    y_np, p_np = y.cpu().numpy(), torch.sigmoid(logits).cpu().numpy()
    has_pos = y_np.sum(0) > 0
    return float(average_precision_score(y_np[:, has_pos], p_np[:, has_pos], average="macro"))


class Evaluator:
    """Whole-clip scoring of one split, as the HEAR embedder sees the clips: every window, the
    CLS outputs averaged over them (weighted by real columns), then the head. The ranks score
    disjoint shares and gather the logits."""

    def __init__(self, split: Split, embedder: ASTEmbedder, *, multilabel: bool,
                 batch_size: int, workers: int, info: DistInfo) -> None:
        self.split, self.embedder, self.multilabel = split, embedder, multilabel
        self.workers, self.info = workers, info
        lengths = [data.num_frames(p) for p in split.paths]
        share = split_rank(len(split), rank=info.rank, world_size=info.world_size)
        self.batches = data.equal_length_batches(lengths, share.tolist(), batch_size)
        self.clips = data.WholeClips(split.paths, embedder.sample_rate)
        self.y = split.targets(torch.arange(len(split)), multilabel)

    @torch.no_grad()
    def __call__(self, model: AST) -> Tuple[float, float]:
        """(mean loss, score) over the whole split."""
        model.eval()
        idx, out = [], []
        for i, audio in data.loader(self.clips, self.batches, workers=self.workers,
                                    device=self.info.device, collate_fn=data.stack_clips):
            scene, _ = self.embedder.embed(audio.to(self.info.device))
            out.append(model.head(model.head_norm(scene)).float().cpu())
            idx.append(i)
        shares = all_gather_objects(
            (torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long),
             torch.cat(out) if out else torch.zeros(0, self.split.n_classes)))
        order = torch.cat([i for i, _ in shares])
        logits = torch.empty(len(self.split), self.split.n_classes)
        logits[order] = torch.cat([o for _, o in shares])
        return loss_fn(logits, self.y, self.multilabel).item(), score(logits, self.y,
                                                                      self.multilabel)


class TrainStream:
    """The training micro-batches: crops streamed by :class:`data.EpochStream`, then on the
    device waveform mixup, the frontend and SpecAugment."""

    def __init__(self, split: Split, embedder: ASTEmbedder, *, multilabel: bool,
                 args: argparse.Namespace, info: DistInfo) -> None:
        self.split, self.embedder, self.multilabel = split, embedder, multilabel
        self.args, self.info = args, info
        crop = data.Crop(embedder.window_samples, args.crop, pad_front=embedder.pad_front)
        self.stream = data.EpochStream(
            data.CroppedClips(split.paths, crop, embedder.sample_rate),
            micro_batch=micro_batch_size(args, info.world_size),
            accumulate=args.accumulate, seed=args.seed, rank=info.rank,
            world_size=info.world_size, workers=args.workers, device=info.device,
            weights=(data.label_balanced_weights(split.labels, split.n_classes)
                     if args.balanced else None))

    def features(self, indices: Tensor, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """Log-mels ``(B, n_mels, frames)`` and targets ``(B, C)`` of a micro-batch."""
        args, dev = self.args, self.info.device
        audio = audio.to(dev, non_blocking=True)
        y = self.split.targets(indices, self.multilabel).to(dev)
        if args.mixup > 0 and len(indices) > 1 and torch.rand(()).item() < args.mixup:
            lam = float(np.random.beta(args.mixup_alpha, args.mixup_alpha))
            audio = lam * audio + (1 - lam) * audio.flip(0)
            y = lam * y + (1 - lam) * y.flip(0)

        def masks(spec: Tensor) -> Tensor:
            return spec_augment_from_args(spec, args)

        with torch.no_grad():
            if args.specaugment_on == "stft":
                return self.embedder.frontend(audio, masks), y
            return masks(self.embedder.frontend(audio)), y

    def loss_of(self, forward: nn.Module) -> Callable[[Tuple[Tensor, Tensor]],
                                                     Tuple[Tensor, int, List[float]]]:
        """The :class:`Stepper` loss of a micro-batch through ``forward``."""
        def loss(micro: Tuple[Tensor, Tensor]) -> Tuple[Tensor, int, List[float]]:
            x, y = self.features(*micro)
            with autocast(self.info.device, self.args.precision):
                logits = forward(x)
            return loss_fn(logits.float(), y, self.multilabel), len(y), []

        return loss


def imagenet_init(model: AST, path: Path, kernel_reduce: str) -> Dict[str, Any]:
    """Load a local timm DeiT/ViT checkpoint into ``model`` (:func:`imagenet.from_timm`);
    returns what the provenance records of it."""
    state = checkpoint.load_file(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # DeiT's released files wrap the state dict
    if not isinstance(state, dict) or "patch_embed.proj.weight" not in state:
        raise SystemExit(f"--imagenet {path}: not a timm DeiT/ViT state dict")
    try:
        model.load_state_dict(from_timm(state, model, kernel_reduce=kernel_reduce), strict=True)
    except ValueError as e:
        raise SystemExit(f"--imagenet {path}: {e}") from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"file": Path(path).name, "sha256": digest, "kernel_reduce": kernel_reduce}


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    if args.epochs < 1:
        problems.append("--epochs must be >= 1")
    problems += run_argument_problems(args, world_size)
    if args.warmup_epochs < 0 or args.lr <= 0 or args.weight_decay < 0 or args.clip_value < 0:
        problems.append("--warmup-epochs, --weight-decay, --clip-value must be >= 0, --lr > 0")
    if not 0.0 <= args.mixup <= 1.0 or args.mixup_alpha <= 0:
        problems.append("--mixup must be in [0, 1] and --mixup-alpha > 0")
    problems += spec_augment_problems(args)
    if not 0 <= args.swa_epochs <= args.epochs:
        problems.append("--swa-epochs must be in 0..--epochs")
    if args.norm_clips < 1:
        problems.append("--norm-clips must be >= 1")
    if problems:
        raise SystemExit("hear-suite train ast: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return run_distributed(args, check_args, evaluate_weights if args.evaluate else run)


def evaluate_weights(args: argparse.Namespace, info: DistInfo) -> Dict[str, Any]:
    """``--evaluate WEIGHTS``: valid and test scores of a weights file whose labels are the
    task's, written to ``OUT/scores.json``."""
    from hear_suite.ast.io import load_encoder
    from hear_suite.tasks import write_atomic

    model = load_encoder(args.evaluate).to(info.device)
    task = open_task(args.task_dir, model.config.sample_rate)
    if tuple(model.config.labels) != tuple(task.labels):
        raise SystemExit(f"--evaluate {args.evaluate}: its {len(model.config.labels)} labels are "
                         f"not the {len(task.labels)} labels of {task.name}")
    multilabel = task.metadata["prediction_type"] == MULTILABEL
    embedder = ASTEmbedder(model).to(info.device)
    metric = "mAP" if multilabel else "top1_acc"
    scores: Dict[str, Any] = {"weights": str(args.evaluate), "task": task.name,
                              "evaluation": "whole clips, every window, then the head"}
    for split in ("valid", "test"):
        evaluator = Evaluator(Split(task, split), embedder, multilabel=multilabel,
                              batch_size=args.batch_size, workers=args.workers, info=info)
        scores[f"{split}_{metric}"] = evaluator(model)[1]
        log(f"{split} {metric} {scores[f'{split}_{metric}']:.4f}")
    if info.is_main:
        write_atomic(Path(args.out) / "scores.json", json.dumps(scores, indent=2) + "\n")
    return scores


def base_config(args: argparse.Namespace, labels: List[str]) -> ASTConfig:
    overrides = {k: getattr(args, k) for k in ("dim", "depth", "heads", "ff_dim", "peg_blocks",
                                               "window_frames", "dropout")
                 if getattr(args, k) is not None}
    return ASTConfig.preset(args.preset, pos_embed=args.pe, labels=tuple(labels), **overrides)


def run(args: argparse.Namespace, info: DistInfo) -> Dict[str, Any]:
    """Train (or resume), average the last epochs, score on valid and test. Returns the
    provenance written into ``OUT/ast_<pe>.pt``."""
    out = Path(args.out)
    weights_name = f"ast_{args.pe}.pt"
    task = open_task(args.task_dir, ASTConfig.preset(args.preset).sample_rate)
    multilabel = task.metadata["prediction_type"] == MULTILABEL
    run_dir = RunDir(out, outputs=(BEST, weights_name))
    resume_from = run_dir.resolve(args.resume_mode)
    splits = {s: Split(task, s) for s in SPLITS}

    # normalisation: the statistics of the raw log-mels (identity normalisation), or the saved
    # config's when resuming (they define the run)
    wanted = base_config(args, task.labels)
    t0 = time.perf_counter()
    state = load_training_state(resume_from) if resume_from is not None else None
    if state is not None and isinstance(state["extra"].get("config"), dict):
        saved = ASTConfig.from_dict(state["extra"]["config"])
        stats = {k: getattr(saved, k) for k in ("norm_mean", "norm_std", "norm_min", "norm_max")}
    else:
        raw = ASTEmbedder(AST(wanted.replace(normalization="mean_std", norm_mean=0.0,
                                             norm_std=0.5))).to(info.device)
        stats = log_mel_statistics(splits["train"], raw, n_clips=args.norm_clips,
                                   workers=args.workers)
        del raw
    config = wanted.replace(**stats)
    log(f"{task.name}: " + ", ".join(f"{s} {len(d)}" for s, d in splits.items())
                 + f" clips, {len(task.labels)} {'multilabel' if multilabel else 'multiclass'} "
                   f"classes, log-mel statistics in {time.perf_counter() - t0:.1f} s; "
                   f"{info.world_size} process(es) on {info.device}")

    seed_everything(args.seed)  # same initial weights on every rank
    model = AST(config).to(info.device)
    init = imagenet_init(model, args.imagenet, args.kernel_reduce) if args.imagenet else None
    log(f"AST {args.pe}: {num_parameters(model):,} parameters"
                 + (f", initialised from {args.imagenet}" if init else ""))
    seed_everything(args.seed, info.rank)  # per-rank streams: masks, mixup, dropout
    embedder = ASTEmbedder(model).to(info.device)
    stream = TrainStream(splits["train"], embedder, multilabel=multilabel, args=args, info=info)
    evaluators = {s: Evaluator(splits[s], embedder, multilabel=multilabel,
                               batch_size=args.batch_size, workers=args.workers, info=info)
                  for s in ("valid", "test")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = stream.stream.steps_per_epoch()
    scheduler = WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        total_steps=args.epochs * steps_per_epoch, decay=args.decay)

    start_epoch, step, best, best_epoch, elapsed = 0, 0, None, 0, 0.0
    swa: Optional[Dict[str, Tensor]] = None
    swa_count = 0
    key = {"config": config.to_dict(), "balanced": args.balanced, "crop": args.crop}
    if state is not None:
        state = resume(resume_from, key, model=model, optimizer=optimizer,
                                scheduler=scheduler, info=info, seed=args.seed, state=state)
        start_epoch, step = state["epoch"], state["step"]
        best, best_epoch = state["best_metric"], state["extra"]["best_epoch"]
        elapsed = state["extra"]["elapsed_s"]
        swa, swa_count = state["extra"].get("swa"), state["extra"].get("swa_count", 0)
        if swa is not None and start_epoch - swa_count < args.epochs - args.swa_epochs:
            log("note: the averaged epochs fall outside the new last --swa-epochs: "
                         "the average starts over")
            swa, swa_count = None, 0
    position = EpochPosition.from_state(state)
    metrics = MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    def save_state(epoch_done: int, at: EpochPosition, at_step: int) -> None:
        save_run_state(
            run_dir.last, info=info, model=model, optimizer=optimizer, scheduler=scheduler,
            epoch=epoch_done, step=at_step, position=at, best_metric=best,
            extra={**key, "best_epoch": best_epoch, "elapsed_s": elapsed, "epochs": args.epochs,
                   "world_size": info.world_size, "swa": swa, "swa_count": swa_count})

    forward = compiled(wrap_ddp(model, info), args.compile)
    stepper = Stepper(forward, optimizer, scheduler, clip_value=args.clip_value)
    stopped = False
    for epoch in range(start_epoch, args.epochs):
        if stop_now(step, args):
            stopped = True
            break
        t1 = time.perf_counter()
        forward.train()
        position, step, lr, complete = train_epoch(
            stream.stream.epoch(epoch, position.steps), stepper, stream.loss_of(forward),
            args=args, epoch=epoch, steps_per_epoch=steps_per_epoch, position=position,
            step=step, save=lambda at_step, at: save_state(epoch, at, at_step))
        elapsed += time.perf_counter() - t1
        if not complete:
            stopped = True
            break
        train_loss = epoch_means(position)[0].item()
        position = EpochPosition()
        valid_loss, valid_score = evaluators["valid"](model)
        if epoch >= args.epochs - args.swa_epochs:  # stochastic weight averaging
            weights = {k: v.detach().double().cpu() for k, v in model.state_dict().items()}
            swa = weights if swa is None else {k: swa[k] + weights[k] for k in swa}
            swa_count += 1
        seconds = time.perf_counter() - t1
        if best is None or valid_score > best:
            best, best_epoch = valid_score, epoch + 1
            if info.is_main:
                save_encoder(out / BEST, model, provenance={
                    "epoch": best_epoch, "valid_score": valid_score,
                    "task_dir": str(args.task_dir)})
        if metrics is not None:
            metrics.append({"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": train_loss,
                            "valid_loss": valid_loss, "valid_score": valid_score,
                            "time_s": seconds})
            plot_curves(metrics.rows, run_dir.curves, CURVES)
        save_state(epoch + 1, position, step)
        log(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} | valid loss "
                     f"{valid_loss:.4f} {'mAP' if multilabel else 'acc'} {valid_score:.4f} | "
                     f"{seconds:.1f} s")
    if stopped:
        log(f"--max-steps {args.max_steps}: stopped at step {step}; rerun without it "
                     f"to continue from {run_dir.last}")

    digest = check_replicas_identical(model)
    if best is None and info.is_main:  # stopped before the first epoch ended: the weights now
        save_encoder(out / BEST, model, provenance={"step": step, "task_dir": str(args.task_dir)})
    barrier()  # best.pt is complete before any rank reads it
    scores: Dict[str, Any] = {}
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(checkpoint.load_checkpoint(out / BEST, FAMILY)["state_dict"],
                          strict=True)
    for split in ("valid", "test"):
        scores[f"best_epoch_{split}"] = evaluators[split](model)[1]
    if args.swa_epochs == 0:
        shipped = f"best-valid epoch {best_epoch}"
    elif swa_count:
        model.load_state_dict({k: (swa[k] / swa_count).to(v.dtype) for k, v in current.items()})
        shipped = f"mean of the last {swa_count} epochs (SWA)"
    else:  # stopped by --max-steps before the averaged epochs
        model.load_state_dict(current)
        shipped = f"the weights at step {step} (--max-steps)"
    for split in ("valid", "test"):
        scores[split] = evaluators[split](model)[1]
    metric = "mAP" if multilabel else "top1_acc"
    provenance = {
        "trainer": __name__, "command": shlex.join(sys.argv),
        "task_dir": str(Path(args.task_dir).resolve()), "task": task.name,
        "clips": {s: len(d) for s, d in splits.items()}, "metric": metric,
        "evaluation": "whole clips, every window (the HEAR scene embedding), then the head",
        "epochs": max(start_epoch, args.epochs), "steps": step, "best_epoch": best_epoch,
        "weights": shipped,
        f"valid_{metric}": scores["valid"], f"test_{metric}": scores["test"],
        f"best_epoch_valid_{metric}": scores["best_epoch_valid"],
        f"best_epoch_test_{metric}": scores["best_epoch_test"],
        "parameters": num_parameters(model), "seed": args.seed, "imagenet_init": init,
        "train_time_s": round(elapsed, 1), "world_size": info.world_size,
        "device": info.device.type, "precision": args.precision,
        "last_weights_sha256": digest,
        "torch_version": str(torch.__version__), "hear_suite_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": plain_args(args),
    }
    if info.is_main:
        save_encoder(out / weights_name, model, provenance=provenance)
    barrier()
    log(f"{weights_name} ({shipped}): valid {metric} {scores['valid']:.4f}, test "
                 f"{metric} {scores['test']:.4f}" + (
                     f" (best epoch {best_epoch}: valid {scores['best_epoch_valid']:.4f}, test "
                     f"{scores['best_epoch_test']:.4f})" if best_epoch else ""))
    return provenance
