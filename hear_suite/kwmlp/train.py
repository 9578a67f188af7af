"""``hear-suite train kwmlp``: train KW-MLP on a HEAR multiclass scene task (paper, appendix A).

    hear-suite train kwmlp --task-dir TASK --out RUN [--epochs 140 --batch-size 256 ...]
    torchrun --nproc_per_node=N -m hear_suite.cli train kwmlp --task-dir TASK --out RUN

The recipe, every number a flag: AdamW (lr 1e-3, weight decay 0.1), per-step linear warm-up for
10 epochs then cosine to 0 over 140 epochs, batch 256 (global: split over the processes), label
smoothing 0.1, block survival 0.9, SpecAugment on the MFCCs (2 time masks of 0-25 frames, 2
frequency masks of 0-7 coefficients).

Clips are cut or zero-padded to one second at the model's 16 kHz. The MFCC frontend is fixed
(nothing in it is trained), so each split's MFCCs ``(N, 40, 98)`` are computed once up front on the
device and kept there; an epoch then only runs the encoder on cached features.

The ``train`` split trains, ``valid`` selects the best epoch, ``test`` is scored once at the end
with the best weights. Run directory: ``metrics.csv``, ``curves.png``, ``last.pt`` (resumable
state, written every epoch; a rerun resumes from it), ``best.pt`` (best-valid encoder) and
``kwmlp.pt`` (the best-valid encoder with full provenance: the shipped weights format).
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import soundfile as sf
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from hear_suite import checkpoint, training
from hear_suite.kwmlp.io import FAMILY, save_encoder
from hear_suite.kwmlp.model import KWMLP, KWMLPConfig, build_frontend
from hear_suite.tasks import MULTICLASS, SCENE, Task, read_task
from hear_suite.version import __version__

SPLITS = ("train", "valid", "test")
BEST, WEIGHTS = "best.pt", "kwmlp.pt"
CURVES = {"loss": ["train_loss", "valid_loss"], "top-1 accuracy": ["train_acc", "valid_acc"],
          "learning rate": ["lr"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-dir", type=Path, required=True,
                        help="HEAR multiclass scene task with train/valid/test splits")
    training.add_run_arguments(parser)
    g = parser.add_argument_group("recipe (defaults: the paper's)")
    g.add_argument("--epochs", type=int, default=140)
    g.add_argument("--batch-size", type=int, default=256,
                   help="global batch, split evenly over the processes")
    g.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--warmup-epochs", type=float, default=10,
                   help="linear warm-up length; then cosine decay to 0")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--survival-prob", type=float, default=0.9,
                   help="stochastic depth: probability that a block is kept in a step")
    training.add_spec_augment_arguments(g, time_width=25, freq_width=7,
                                        freq_help="max MFCC coefficients per frequency mask")
    g.add_argument("--depth", type=int, default=12, help="gMLP blocks")
    g.add_argument("--dim", type=int, default=64, help="token width")
    parser.add_argument("--save-rank-weights", action="store_true",
                        help="debugging: every process writes its final (last-epoch) weights to "
                             "OUT/rank<r>.pt, to check that the replicas agree")


# ---------------------------------------------------------------------------------------------
# data


def open_task(task_dir: Path, sample_rate: int) -> Task:
    """Read ``task_dir`` at ``sample_rate``; raise ``ValueError`` unless it is a multiclass scene
    task with train/valid/test splits and audio at that rate."""
    task_dir = Path(task_dir)
    rates = sorted(p.name for p in task_dir.glob("[0-9]*") if p.is_dir() and p.name.isdigit())
    if (task_dir / "task_metadata.json").is_file() and str(sample_rate) not in rates:
        raise ValueError(f"{task_dir} has audio at {', '.join(rates) or 'no'} Hz, but KW-MLP "
                         f"trains on {sample_rate} Hz audio and there is no {sample_rate}/ "
                         f"folder: resample the task to {sample_rate} Hz first")
    task = read_task(task_dir, sample_rate=sample_rate)
    kind = (task.metadata["embedding_type"], task.metadata["prediction_type"])
    if kind != (SCENE, MULTICLASS):
        raise ValueError(f"{task.name}: KW-MLP trains on multiclass scene tasks, this one is "
                         f"{kind[1]} {kind[0]}")
    missing = [s for s in SPLITS if s not in task.examples]
    if missing:
        raise ValueError(f"{task.name}: needs train/valid/test splits, has {task.splits}")
    for split in SPLITS:
        for path, labels in task.examples[split].items():
            if len(labels) != 1:
                raise ValueError(f"{task.name}: {path.name} in {split} has labels {labels}, "
                                 f"expected exactly one")
    return task


class OneSecondClips(Dataset):
    """Wav files as ``(n_samples,)`` float32: mono, first ``n_samples`` or zero-padded."""

    def __init__(self, paths: Sequence[Path], *, sample_rate: int, n_samples: int) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.n_samples = n_samples

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        audio, sr = sf.read(str(self.paths[i]), dtype="float32", always_2d=True,
                            frames=self.n_samples)
        if sr != self.sample_rate:
            raise ValueError(f"{self.paths[i]} is at {sr} Hz, expected {self.sample_rate} Hz")
        clip = torch.zeros(self.n_samples)
        clip[: audio.shape[0]] = torch.from_numpy(audio.mean(axis=1))
        return clip


@dataclass
class SplitData:
    """One split on the device: MFCCs ``x (N, n_mfcc, frames)`` and class indices ``y (N,)``."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@torch.no_grad()
def encode_split(task: Task, split: str, frontend: nn.Module, config: KWMLPConfig, *,
                 device: torch.device, batch_size: int, workers: int) -> SplitData:
    """Read a split's clips and compute their MFCCs once, in batches, on ``device``."""
    index = task.label_index()
    paths = sorted(task.examples[split])
    y = torch.tensor([index[task.examples[split][p][0]] for p in paths], device=device)
    clips = OneSecondClips(paths, sample_rate=config.sample_rate, n_samples=config.chunk_samples)
    # Own generator: loading consumes no draws from the global RNG.
    loader = DataLoader(clips, batch_size=batch_size, num_workers=workers,
                        generator=torch.Generator(), pin_memory=device.type == "cuda")
    x = torch.empty(len(paths), config.n_mfcc, config.num_frames, device=device)
    i = 0
    for audio in training.progress(loader, desc=f"MFCC {split}", leave=False):
        x[i:i + len(audio)] = frontend(audio.to(device, non_blocking=True))
        i += len(audio)
    return SplitData(x, y)


# ---------------------------------------------------------------------------------------------
# training and evaluation


def train_one_epoch(model: nn.Module, data: SplitData, *, optimizer: torch.optim.Optimizer,
                    scheduler: training.WarmupDecayLR, criterion: nn.Module,
                    args: argparse.Namespace, info: training.DistInfo,
                    epoch: int) -> Tuple[float, float, int, float]:
    """One pass over this rank's shard. Returns mean train loss and top-1 over all ranks, the
    number of steps taken and the learning rate of the last step."""
    model.train()
    idx = training.shard_indices(len(data), rank=info.rank, world_size=info.world_size,
                                 epoch=epoch, seed=args.seed)
    per_rank = args.batch_size // info.world_size
    sums = torch.zeros(3, dtype=torch.float64, device=info.device)  # loss * n, correct, n
    steps, lr = 0, float("nan")
    bar = training.progress(training.batches(idx, per_rank), total=math.ceil(len(idx) / per_rank),
                            desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
    for b in bar:
        b = b.to(info.device)
        x = training.spec_augment_from_args(data.x[b], args)
        y = data.y[b]
        logits = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        steps += 1
        with torch.no_grad():
            sums += torch.stack([loss.detach().double() * len(b),
                                 (logits.argmax(1) == y).sum().double(),
                                 torch.tensor(float(len(b)), dtype=torch.float64,
                                              device=info.device)])
        if steps % 10 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{(sums[0] / sums[2]).item():.3f}")
    total = training.all_reduce_sum(sums)
    return (total[0] / total[2]).item(), (total[1] / total[2]).item(), steps, lr


@torch.no_grad()
def evaluate(model: KWMLP, data: SplitData, *, criterion: nn.Module, batch_size: int,
             info: training.DistInfo) -> Tuple[float, float]:
    """(mean loss, top-1) of the full split; each rank scores a disjoint share."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=info.device)
    share = training.split_rank(len(data), rank=info.rank, world_size=info.world_size)
    for b in training.batches(share, batch_size):
        b = b.to(info.device)
        logits = model(data.x[b])
        sums += torch.stack([criterion(logits, data.y[b]).double() * len(b),
                             (logits.argmax(1) == data.y[b]).sum().double(),
                             torch.tensor(float(len(b)), dtype=torch.float64, device=info.device)])
    total = training.all_reduce_sum(sums)
    return (total[0] / total[2]).item(), (total[1] / total[2]).item()


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    if args.epochs < 1:
        problems.append("--epochs must be >= 1")
    if args.batch_size < 1 or args.batch_size % world_size:
        problems.append(f"--batch-size {args.batch_size} must be a positive multiple of the "
                        f"number of processes ({world_size})")
    if args.warmup_epochs < 0 or args.lr <= 0 or args.weight_decay < 0:
        problems.append("--warmup-epochs and --weight-decay must be >= 0 and --lr > 0")
    if not 0.0 <= args.label_smoothing < 1.0:
        problems.append("--label-smoothing must be in [0, 1)")
    problems += training.spec_augment_problems(args)
    if args.workers < 0:
        problems.append("--workers must be >= 0")
    if problems:
        raise SystemExit("hear-suite train kwmlp: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return training.run_distributed(args, check_args, run)


def run(args: argparse.Namespace, info: training.DistInfo) -> Dict[str, Any]:
    """Train (or resume), then score the best epoch on valid and test. Returns the provenance
    written into ``OUT/kwmlp.pt``."""
    out = Path(args.out)
    task = open_task(args.task_dir, KWMLPConfig.sample_rate)
    run_dir = training.RunDir(out, outputs=(BEST, WEIGHTS))
    resume_from = run_dir.resolve(args.resume_mode)
    config = KWMLPConfig(labels=tuple(task.labels), depth=args.depth, dim=args.dim,
                         survival_prob=args.survival_prob)
    frontend = build_frontend(config).to(info.device).eval().requires_grad_(False)
    t0 = time.perf_counter()
    data = {split: encode_split(task, split, frontend, config, device=info.device,
                                batch_size=args.batch_size, workers=args.workers)
            for split in SPLITS}
    training.log(f"{task.name}: " + ", ".join(f"{s} {len(d)}" for s, d in data.items())
                 + f" clips, {len(task.labels)} classes, MFCCs in "
                   f"{time.perf_counter() - t0:.1f} s; {info.world_size} process(es) on "
                   f"{info.device}")

    training.seed_everything(args.seed)  # same initial weights on every rank
    model = KWMLP(config).to(info.device)
    training.seed_everything(args.seed, info.rank)  # per-rank streams: depth drops, masks
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    per_rank = args.batch_size // info.world_size
    steps_per_epoch = math.ceil(math.ceil(len(data["train"]) / info.world_size) / per_rank)
    scheduler = training.WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        total_steps=args.epochs * steps_per_epoch)

    start_epoch, step, best_acc, best_epoch, elapsed = 0, 0, None, 0, 0.0
    if resume_from is not None:
        state = training.resume(resume_from, {"config": config.to_dict()}, model=model,
                                optimizer=optimizer, scheduler=scheduler, info=info,
                                seed=args.seed)
        start_epoch, step = state["epoch"], state["step"]
        best_acc, best_epoch = state["best_metric"], state["extra"]["best_epoch"]
        elapsed = state["extra"]["elapsed_s"]
        if state["extra"].get("epochs") != args.epochs:
            training.log(f"note: the schedule is re-planned from {state['extra'].get('epochs')} "
                         f"to {args.epochs} epochs")
    metrics = training.MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    # Stochastic depth drops whole blocks, so some parameters get no gradient in a step.
    ddp = training.wrap_ddp(model, info, find_unused_parameters=True)
    for epoch in range(start_epoch, args.epochs):
        t0 = time.perf_counter()
        train_loss, train_acc, steps, lr = train_one_epoch(
            ddp, data["train"], optimizer=optimizer, scheduler=scheduler, criterion=criterion,
            args=args, info=info, epoch=epoch)
        step += steps
        valid_loss, valid_acc = evaluate(model, data["valid"], criterion=criterion,
                                         batch_size=args.batch_size, info=info)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        if best_acc is None or valid_acc > best_acc:
            best_acc, best_epoch = valid_acc, epoch + 1
            if info.is_main:
                save_encoder(out / BEST, model, provenance={
                    "epoch": best_epoch, "valid_acc": valid_acc, "task_dir": str(args.task_dir)})
        rngs = training.all_gather_objects(training.rng_state(info.device))
        if metrics is not None:
            metrics.append({"epoch": epoch + 1, "step": step, "lr": lr,
                            "train_loss": train_loss, "train_acc": train_acc,
                            "valid_loss": valid_loss, "valid_acc": valid_acc, "time_s": seconds})
            training.plot_curves(metrics.rows, run_dir.curves, CURVES)
            training.save_training_state(
                run_dir.last, model=model, optimizer=optimizer, scheduler=scheduler,
                epoch=epoch + 1, step=step, rng=rngs, best_metric=best_acc,
                extra={"config": config.to_dict(), "best_epoch": best_epoch,
                       "elapsed_s": elapsed, "epochs": args.epochs,
                       "world_size": info.world_size})
        training.log(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} "
                     f"acc {train_acc:.4f} | valid loss {valid_loss:.4f} acc {valid_acc:.4f} | "
                     f"{seconds:.1f} s")
    if start_epoch >= args.epochs:
        training.log(f"{run_dir.last} already has {start_epoch} epochs (--epochs "
                     f"{args.epochs}): scoring its best epoch")

    digest = training.check_replicas_identical(model)
    if args.save_rank_weights:
        checkpoint.save_atomic(model.state_dict(), out / f"rank{info.rank}.pt")
    training.barrier()  # best.pt is complete before any rank reads it
    best = checkpoint.load_checkpoint(out / BEST, FAMILY)
    model.load_state_dict(best["state_dict"], strict=True)
    valid_loss, valid_acc = evaluate(model, data["valid"], criterion=criterion,
                                     batch_size=args.batch_size, info=info)
    test_loss, test_acc = evaluate(model, data["test"], criterion=criterion,
                                   batch_size=args.batch_size, info=info)
    provenance = {
        "trainer": __name__,
        "command": shlex.join(sys.argv),
        "task_dir": str(Path(args.task_dir).resolve()),
        "task": task.name,
        "clips": {s: len(d) for s, d in data.items()},
        "epochs": max(start_epoch, args.epochs),
        "best_epoch": best_epoch,
        "seed": args.seed,
        "valid_acc": valid_acc,
        "test_acc": test_acc,
        "train_time_s": round(elapsed, 1),
        "world_size": info.world_size,
        "device": info.device.type,
        "last_epoch_weights_sha256": digest,
        "torch_version": str(torch.__version__),
        "hear_suite_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": training.plain_args(args),
    }
    if info.is_main:
        save_encoder(out / WEIGHTS, model, provenance=provenance)
    training.barrier()
    training.log(f"best epoch {best_epoch}: valid top-1 {valid_acc:.4f}, test top-1 "
                 f"{test_acc:.4f} -> {out / WEIGHTS}")
    return provenance
