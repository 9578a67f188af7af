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

Data: every clip is framed exactly as :class:`hear_suite.ast.embedder.ASTEmbedder` frames audio,
and its first window (``window_frames``, 3.2 s for the ``small`` and ``medium`` presets) is the
training example; the frontend is fixed, so each split's log-mels are computed once. The
normalisation statistics of the training log-mels (mean and standard deviation for AST's
``mean_std``, minimum and maximum for seed 003's ``unit_range``) go into the model's config.

Run directory: ``metrics.csv``, ``curves.png``, ``last.pt`` (resumable; a rerun resumes),
``best.pt`` (best-valid epoch) and ``ast_<pe>.pt`` (shipped format, with provenance).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hear_suite import checkpoint, training
from hear_suite.ast.embedder import ASTEmbedder
from hear_suite.ast.imagenet import from_timm
from hear_suite.ast.io import FAMILY, save_encoder
from hear_suite.ast.model import AST, POS_EMBEDS, PRESETS, ASTConfig, normalize, num_parameters
from hear_suite.tasks import MULTILABEL, SCENE, Task, read_task
from hear_suite.version import __version__

SPLITS = ("train", "valid", "test")
BEST = "best.pt"
CURVES = {"loss": ["train_loss", "valid_loss"], "validation score": ["valid_score"],
          "learning rate": ["lr"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-dir", type=Path, required=True,
                        help="HEAR scene task (multilabel or multiclass) with train/valid/test")
    training.add_run_arguments(parser)
    m = parser.add_argument_group("model")
    m.add_argument("--pe", choices=POS_EMBEDS, default="conditional", help="positional encoding")
    m.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="base configuration (small: 4 x 128, the tests' size; medium: 4 x 256, "
                        "the shipped models; ast_pe: seed 003; ast: AST / seed 002)")
    for name in ("dim", "depth", "heads", "ff_dim", "peg_blocks", "window_frames"):
        m.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"override the preset's {name}")
    m.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    m.add_argument("--imagenet", type=Path, default=None,
                   help="initialise from a local timm DeiT/ViT checkpoint (patch 16; e.g. with "
                        "--preset ast); nothing is downloaded")
    m.add_argument("--kernel-reduce", choices=("sum", "mean"), default="sum",
                   help="RGB patch kernel to one channel (AST code: sum; seed 002: mean)")
    g = parser.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=40)
    g.add_argument("--batch-size", type=int, default=32, help="global batch, split over processes")
    g.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (seed 003: 5e-4)")
    g.add_argument("--warmup-epochs", type=float, default=3)
    g.add_argument("--decay", choices=training.DECAYS, default="cosine",
                   help="after warm-up: cosine to 0, or seed 003's 1/sqrt(step)")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--clip-value", type=float, default=1.0,
                   help="clip every gradient value to +-this (0: off)")
    g.add_argument("--mixup", type=float, default=0.5, help="probability that a batch is mixed")
    g.add_argument("--mixup-alpha", type=float, default=10.0, help="lambda ~ Beta(a, a)")
    training.add_spec_augment_arguments(
        g, time_width=48, freq_width=12,
        freq_help="max bins per mask (mel bins, or STFT bins with --specaugment-on stft)")
    g.add_argument("--specaugment-on", choices=("log_mel", "stft"), default="log_mel",
                   help="mask the normalised log-mel (AST) or the linear STFT power before the "
                        "mel filterbank (seed 003: --freq-mask-width 64 --time-mask-width 100)")
    g.add_argument("--swa-epochs", type=int, default=5,
                   help="ship the mean of the last N epochs' weights (0: the best-valid epoch)")


# ---------------------------------------------------------------------------------------------
# data


def open_task(task_dir: Path, sample_rate: int) -> Task:
    task = read_task(task_dir, sample_rate=sample_rate)
    if task.metadata["embedding_type"] != SCENE:
        raise ValueError(f"{task.name}: AST trains on scene tasks, this is an event task")
    missing = [s for s in SPLITS if s not in task.examples]
    if missing:
        raise ValueError(f"{task.name}: needs train/valid/test splits, has {task.splits}")
    return task


def load_clips(paths: List[Path], n_samples: int, sample_rate: int) -> Tensor:
    """The first ``n_samples`` of each wav (zero-padded), ``(N, n_samples)``."""
    out = torch.zeros(len(paths), n_samples)
    for i, path in enumerate(paths):
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True, frames=n_samples)
        if sr != sample_rate:
            raise ValueError(f"{path} is at {sr} Hz, expected {sample_rate} Hz")
        out[i, :audio.shape[0]] = torch.from_numpy(audio.mean(axis=1))
    return out


def first_window_audio(paths: List[Path], embedder: ASTEmbedder, sample_rate: int) -> Tensor:
    """The samples the first window of each clip sees, framed as the embedder frames audio:
    ``(N, window_samples)`` on the embedder's device."""
    audio = load_clips(paths, embedder.window_samples - embedder.pad_front, sample_rate)
    return embedder.window_audio(audio, 0, 1)[:, 0]


@torch.no_grad()
def encode_split(task: Task, split: str, embedder: ASTEmbedder, *, batch_size: int
                 ) -> Tuple[Tensor, Tensor]:
    """First-window log-mels ``(N, n_mels, frames)`` of a split (on the embedder's device) and
    targets: multi-hot ``(N, C)`` float (multilabel) or class indices ``(N,)``."""
    index = task.label_index()
    paths = sorted(task.examples[split])
    x = torch.cat([embedder.frontend(first_window_audio(paths[i:i + batch_size], embedder,
                                                        task.sample_rate))
                   for i in range(0, len(paths), batch_size)])
    if task.is_multilabel:
        y = torch.zeros(len(paths), len(task.labels))
        for k, p in enumerate(paths):
            y[k, [index[label] for label in task.examples[split][p]]] = 1.0
    else:
        y = torch.tensor([index[task.examples[split][p][0]] for p in paths])
    return x, y.to(x.device)


# ---------------------------------------------------------------------------------------------
# training and evaluation


def loss_fn(logits: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y)  # y: indices or (mixed) class probabilities


def score(logits: Tensor, y: Tensor, multilabel: bool) -> float:
    """mAP (multilabel, macro over classes with a positive) or top-1 accuracy."""
    if not multilabel:
        return (logits.argmax(1) == y).float().mean().item()
    from sklearn.metrics import average_precision_score

    y_np, p_np = y.cpu().numpy(), torch.sigmoid(logits).cpu().numpy()
    has_pos = y_np.sum(0) > 0
    return float(average_precision_score(y_np[:, has_pos], p_np[:, has_pos], average="macro"))


@torch.no_grad()
def evaluate(model: AST, x: Tensor, y: Tensor, *, multilabel: bool, batch_size: int
             ) -> Tuple[float, float]:
    """(mean loss, score) over a whole split (every rank computes it: the splits are small)."""
    model.eval()
    logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return loss_fn(logits, y, multilabel).item(), score(logits, y, multilabel)


def train_one_epoch(model: nn.Module, features: Callable[[Tensor], Tensor], y: Tensor, *,
                    optimizer: torch.optim.Optimizer, scheduler: training.WarmupDecayLR,
                    multilabel: bool, n_classes: int, args: argparse.Namespace,
                    info: training.DistInfo, epoch: int) -> Tuple[float, int, float]:
    """One pass over this rank's shard: mean train loss (all ranks), steps, last learning rate.
    ``features(indices)``: the SpecAugmented log-mels of those training examples."""
    model.train()
    idx = training.shard_indices(len(y), rank=info.rank, world_size=info.world_size,
                                 epoch=epoch, seed=args.seed)
    per_rank = args.batch_size // info.world_size
    sums = torch.zeros(2, dtype=torch.float64, device=info.device)
    steps, lr = 0, float("nan")
    bar = training.progress(training.batches(idx, per_rank), total=math.ceil(len(idx) / per_rank),
                            desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
    for b in bar:
        b = b.to(info.device)
        xb = features(b)
        yb = y[b] if multilabel else F.one_hot(y[b], n_classes).float()
        if args.mixup > 0 and len(b) > 1 and torch.rand(()).item() < args.mixup:
            lam = float(np.random.beta(args.mixup_alpha, args.mixup_alpha))
            xb = lam * xb + (1 - lam) * xb.flip(0)
            yb = lam * yb + (1 - lam) * yb.flip(0)
        loss = loss_fn(model(xb), yb, multilabel)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_value > 0:
            nn.utils.clip_grad_value_(model.parameters(), args.clip_value)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        steps += 1
        sums += torch.stack([loss.detach().double() * len(b),
                             torch.tensor(float(len(b)), dtype=torch.float64, device=info.device)])
    total = training.all_reduce_sum(sums)
    return (total[0] / total[1]).item(), steps, lr


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


def augmented_features(args: argparse.Namespace, task: Task, x: Tensor, config: ASTConfig,
                       device: torch.device) -> Callable[[Tensor], Tensor]:
    """``indices -> (B, n_mels, frames)`` SpecAugmented training log-mels: masks on the cached
    normalised log-mels ``x`` (AST), or on the linear STFT power before the mel filterbank,
    recomputing the frontend per batch (``--specaugment-on stft``, seed 003)."""
    def masks(spec: Tensor) -> Tensor:
        return training.spec_augment_from_args(spec, args)

    if args.specaugment_on == "log_mel":
        return lambda b: masks(x[b])
    embedder = ASTEmbedder(AST(config)).to(device)
    audio = first_window_audio(sorted(task.examples["train"]), embedder, task.sample_rate)

    @torch.no_grad()
    def from_audio(b: Tensor) -> Tensor:
        return embedder.frontend(audio[b], masks)

    return from_audio


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    if args.epochs < 1:
        problems.append("--epochs must be >= 1")
    if args.batch_size < 1 or args.batch_size % world_size:
        problems.append(f"--batch-size {args.batch_size} must be a positive multiple of the "
                        f"number of processes ({world_size})")
    if args.warmup_epochs < 0 or args.lr <= 0 or args.weight_decay < 0 or args.clip_value < 0:
        problems.append("--warmup-epochs, --weight-decay, --clip-value must be >= 0, --lr > 0")
    if not 0.0 <= args.mixup <= 1.0 or args.mixup_alpha <= 0:
        problems.append("--mixup must be in [0, 1] and --mixup-alpha > 0")
    problems += training.spec_augment_problems(args)
    if not 0 <= args.swa_epochs <= args.epochs:
        problems.append("--swa-epochs must be in 0..--epochs")
    if problems:
        raise SystemExit("hear-suite train ast: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return training.run_distributed(args, check_args, run)


def base_config(args: argparse.Namespace, labels: List[str]) -> ASTConfig:
    overrides = {k: getattr(args, k) for k in ("dim", "depth", "heads", "ff_dim", "peg_blocks",
                                               "window_frames", "dropout")
                 if getattr(args, k) is not None}
    return ASTConfig.preset(args.preset, pos_embed=args.pe, labels=tuple(labels), **overrides)


def run(args: argparse.Namespace, info: training.DistInfo) -> Dict[str, Any]:
    """Train (or resume), average the last epochs, score on valid and test. Returns the
    provenance written into ``OUT/ast_<pe>.pt``."""
    out = Path(args.out)
    weights_name = f"ast_{args.pe}.pt"
    task = open_task(args.task_dir, ASTConfig.preset(args.preset).sample_rate)
    multilabel = task.metadata["prediction_type"] == MULTILABEL
    run_dir = training.RunDir(out, outputs=(BEST, weights_name))
    resume_from = run_dir.resolve(args.resume_mode)

    # raw log-mels first (the identity normalisation), then the training set's statistics
    wanted = base_config(args, task.labels)
    raw = wanted.replace(normalization="mean_std", norm_mean=0.0, norm_std=0.5)
    embedder = ASTEmbedder(AST(raw)).to(info.device)
    t0 = time.perf_counter()
    data = {s: encode_split(task, s, embedder, batch_size=64) for s in SPLITS}
    x_tr = data["train"][0]
    stats = {k: float(f"{v:.6g}") for k, v in (("norm_mean", x_tr.mean().item()),
                                               ("norm_std", x_tr.std().item()),
                                               ("norm_min", x_tr.min().item()),
                                               ("norm_max", x_tr.max().item()))}
    config = wanted.replace(**stats)
    data = {s: (normalize(x, config), y) for s, (x, y) in data.items()}
    del embedder, x_tr
    training.log(f"{task.name}: " + ", ".join(f"{s} {len(d[1])}" for s, d in data.items())
                 + f" clips, {len(task.labels)} {'multilabel' if multilabel else 'multiclass'} "
                   f"classes, log-mels {tuple(data['train'][0].shape[1:])} in "
                   f"{time.perf_counter() - t0:.1f} s; {info.world_size} process(es) on "
                   f"{info.device}")

    training.seed_everything(args.seed)  # same initial weights on every rank
    model = AST(config).to(info.device)
    init = imagenet_init(model, args.imagenet, args.kernel_reduce) if args.imagenet else None
    training.log(f"AST {args.pe}: {num_parameters(model):,} parameters"
                 + (f", initialised from {args.imagenet}" if init else ""))
    training.seed_everything(args.seed, info.rank)  # per-rank streams: masks, mixup, dropout
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    per_rank = args.batch_size // info.world_size
    steps_per_epoch = math.ceil(math.ceil(len(data["train"][1]) / info.world_size) / per_rank)
    scheduler = training.WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        total_steps=args.epochs * steps_per_epoch, decay=args.decay)

    start_epoch, step, best, best_epoch, elapsed = 0, 0, None, 0, 0.0
    swa: Optional[Dict[str, Tensor]] = None
    swa_count = 0
    if resume_from is not None:
        state = training.resume(resume_from, {"config": config.to_dict()}, model=model,
                                optimizer=optimizer, scheduler=scheduler, info=info,
                                seed=args.seed)
        start_epoch, step = state["epoch"], state["step"]
        best, best_epoch = state["best_metric"], state["extra"]["best_epoch"]
        elapsed = state["extra"]["elapsed_s"]
        swa, swa_count = state["extra"].get("swa"), state["extra"].get("swa_count", 0)
        if swa is not None and start_epoch - swa_count < args.epochs - args.swa_epochs:
            training.log("note: the averaged epochs fall outside the new last --swa-epochs: "
                         "the average starts over")
            swa, swa_count = None, 0
    metrics = training.MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    ddp = training.wrap_ddp(model, info)
    features = augmented_features(args, task, data["train"][0], config, info.device)
    for epoch in range(start_epoch, args.epochs):
        t1 = time.perf_counter()
        train_loss, steps, lr = train_one_epoch(
            ddp, features, data["train"][1], optimizer=optimizer, scheduler=scheduler, multilabel=multilabel,
            n_classes=len(task.labels), args=args, info=info, epoch=epoch)
        step += steps
        valid_loss, valid_score = evaluate(model, *data["valid"], multilabel=multilabel,
                                           batch_size=args.batch_size)
        if epoch >= args.epochs - args.swa_epochs:  # stochastic weight averaging
            weights = {k: v.detach().double().cpu() for k, v in model.state_dict().items()}
            swa = weights if swa is None else {k: swa[k] + weights[k] for k in swa}
            swa_count += 1
        seconds = time.perf_counter() - t1
        elapsed += seconds
        if best is None or valid_score > best:
            best, best_epoch = valid_score, epoch + 1
            if info.is_main:
                save_encoder(out / BEST, model, provenance={
                    "epoch": best_epoch, "valid_score": valid_score,
                    "task_dir": str(args.task_dir)})
        rngs = training.all_gather_objects(training.rng_state(info.device))
        if metrics is not None:
            metrics.append({"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": train_loss,
                            "valid_loss": valid_loss, "valid_score": valid_score,
                            "time_s": seconds})
            training.plot_curves(metrics.rows, run_dir.curves, CURVES)
            training.save_training_state(
                run_dir.last, model=model, optimizer=optimizer, scheduler=scheduler,
                epoch=epoch + 1, step=step, rng=rngs, best_metric=best,
                extra={"config": config.to_dict(), "best_epoch": best_epoch, "elapsed_s": elapsed,
                       "epochs": args.epochs, "world_size": info.world_size, "swa": swa,
                       "swa_count": swa_count})
        training.log(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} | valid loss "
                     f"{valid_loss:.4f} {'mAP' if multilabel else 'acc'} {valid_score:.4f} | "
                     f"{seconds:.1f} s")

    digest = training.check_replicas_identical(model)
    training.barrier()  # best.pt is complete before any rank reads it
    scores: Dict[str, Any] = {}
    best_sd = checkpoint.load_checkpoint(out / BEST, FAMILY)["state_dict"]
    model.load_state_dict(best_sd, strict=True)
    for split in ("valid", "test"):
        scores[f"best_epoch_{split}"] = evaluate(model, *data[split], multilabel=multilabel,
                                                 batch_size=args.batch_size)[1]
    if swa is not None and args.swa_epochs > 0:
        ref = model.state_dict()
        model.load_state_dict({k: (swa[k] / swa_count).to(ref[k].dtype) for k in ref}, strict=True)
    for split in ("valid", "test"):
        scores[split] = evaluate(model, *data[split], multilabel=multilabel,
                                 batch_size=args.batch_size)[1]
    metric = "mAP" if multilabel else "top1_acc"
    provenance = {
        "trainer": __name__, "command": shlex.join(sys.argv),
        "task_dir": str(Path(args.task_dir).resolve()), "task": task.name,
        "clips": {s: len(d[1]) for s, d in data.items()}, "metric": metric,
        "epochs": max(start_epoch, args.epochs), "best_epoch": best_epoch,
        "weights": f"mean of the last {swa_count} epochs (SWA)" if args.swa_epochs else
                   f"best-valid epoch {best_epoch}",
        f"valid_{metric}": scores["valid"], f"test_{metric}": scores["test"],
        f"best_epoch_valid_{metric}": scores["best_epoch_valid"],
        f"best_epoch_test_{metric}": scores["best_epoch_test"],
        "parameters": num_parameters(model), "seed": args.seed, "imagenet_init": init,
        "train_time_s": round(elapsed, 1), "world_size": info.world_size,
        "device": info.device.type, "last_epoch_weights_sha256": digest,
        "torch_version": str(torch.__version__), "hear_suite_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": training.plain_args(args),
    }
    if info.is_main:
        save_encoder(out / weights_name, model, provenance=provenance)
    training.barrier()
    training.log(f"{weights_name}: valid {metric} {scores['valid']:.4f}, test {metric} "
                 f"{scores['test']:.4f} (best epoch {best_epoch}: valid "
                 f"{scores['best_epoch_valid']:.4f}, test {scores['best_epoch_test']:.4f})")
    return provenance
