"""``hear-suite train kwmlp``: train KW-MLP on a HEAR multiclass scene task (paper, appendix A).

    hear-suite train kwmlp --task-dir TASK --out RUN [--epochs 140 --batch-size 256 ...]
    torchrun --nproc_per_node=N -m hear_suite.cli train kwmlp --task-dir TASK --out RUN

The recipe, every number a flag: AdamW (lr 1e-3, weight decay 0.1), per-step linear warm-up for
10 epochs then cosine to 0 over 140 epochs, batch 256 (global: split over the processes), label
smoothing 0.1, block survival 0.9, SpecAugment on the MFCCs (2 time masks of 0-25 frames, 2
frequency masks of 0-7 coefficients).

Data (streamed; nothing is held in memory): a training draw reads one second at the model's 16 kHz
from its clip (zero-padded if shorter): the first second (``--crop start``, the paper's, whose
clips are one second) or one anywhere in the clip (``--crop random``), moved by up to
``--time-shift`` ms either way. Clips are read by ``--workers`` processes; the MFCC frontend (fixed,
nothing in it is trained) runs per batch on the training device. Validation and test score the
first second of every clip. ``--max-steps``, ``--accumulate``, ``--precision bf16``,
``--compile`` and mid-epoch checkpoints: see :mod:`hear_suite.training`.

The ``train`` split trains, ``valid`` selects the best epoch, ``test`` is scored once at the end
with the best weights. Run directory: ``metrics.csv``, ``curves.png``, ``last.pt`` (resumable
state, written every epoch; a rerun resumes from it), ``best.pt`` (best-valid encoder) and
``kwmlp.pt`` (the best-valid encoder with full provenance: the shipped weights format).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor, nn

from hear_suite import checkpoint, data
from hear_suite.kwmlp.io import FAMILY, save_encoder
from hear_suite.kwmlp.model import KWMLP, KWMLPConfig, build_frontend
from hear_suite.tasks import MULTICLASS, SCENE, Task, read_task
from hear_suite.version import __version__
from hear_suite.training.args import (add_run_arguments, micro_batch_size, plain_args,
                                      run_argument_problems)
from hear_suite.training.augment import (add_spec_augment_arguments, spec_augment_from_args,
                                         spec_augment_problems)
from hear_suite.training.distributed import (all_reduce_sum, barrier, check_replicas_identical,
                                             DistInfo, run_distributed, wrap_ddp)
from hear_suite.training.metrics import log, MetricsLog, plot_curves
from hear_suite.training.schedules import WarmupDecayLR
from hear_suite.training.seeding import seed_everything
from hear_suite.training.sharding import split_rank
from hear_suite.training.state import resume, RunDir, save_run_state
from hear_suite.training.steps import (autocast, compiled, epoch_means, EpochPosition, Stepper,
                                       stop_now, train_epoch)

SPLITS = ("train", "valid", "test")
BEST, WEIGHTS = "best.pt", "kwmlp.pt"
CURVES = {"loss": ["train_loss", "valid_loss"], "top-1 accuracy": ["train_acc", "valid_acc"],
          "learning rate": ["lr"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-dir", type=Path, required=True,
                        help="HEAR multiclass scene task with train/valid/test splits")
    add_run_arguments(parser)
    g = parser.add_argument_group("recipe (defaults: the paper's)")
    g.add_argument("--epochs", type=int, default=140)
    g.add_argument("--batch-size", type=int, default=256,
                   help="global batch of one optimizer step, split evenly over the processes "
                        "and --accumulate micro-batches")
    g.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--warmup-epochs", type=float, default=10,
                   help="linear warm-up length; then cosine decay to 0")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--survival-prob", type=float, default=0.9,
                   help="stochastic depth: probability that a block is kept in a step")
    add_spec_augment_arguments(g, time_width=25, freq_width=7,
                                        freq_help="max MFCC coefficients per frequency mask")
    g.add_argument("--crop", choices=data.CROP_MODES, default="start",
                   help="training second: the first of the clip (paper) or a random one")
    g.add_argument("--time-shift", type=float, default=0.0,
                   help="shift the training second by up to +-this many ms (zeros fill in)")
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


class Split:
    """One split's clips (sorted paths) and class indices ``y (N,)``."""

    def __init__(self, task: Task, split: str) -> None:
        index = task.label_index()
        self.paths = sorted(task.examples[split])
        self.y = torch.tensor([index[task.examples[split][p][0]] for p in self.paths])

    def __len__(self) -> int:
        return len(self.paths)


def first_seconds(split: Split, config: KWMLPConfig) -> data.CroppedClips:
    return data.CroppedClips(split.paths, data.Crop(config.chunk_samples, "start"),
                             config.sample_rate)


def loss_function(forward: nn.Module, frontend: nn.Module, split: Split,
                  criterion: nn.Module, args: argparse.Namespace, device: torch.device):
    """The :class:`Stepper` loss of a micro-batch ``(indices, audio)``: MFCCs on the
    device, SpecAugment, the encoder (under ``--precision``); extra sum: correct predictions."""
    def loss_of(micro: Tuple[Tensor, Tensor]) -> Tuple[Tensor, int, List[float]]:
        indices, audio = micro
        with torch.no_grad():
            x = spec_augment_from_args(frontend(audio.to(device, non_blocking=True)),
                                                args)
        y = split.y[indices].to(device)
        with autocast(device, args.precision):
            logits = forward(x)
        loss = criterion(logits.float(), y)
        return loss, len(y), [(logits.argmax(1) == y).sum().item()]

    return loss_of


@torch.no_grad()
def evaluate(model: KWMLP, frontend: nn.Module, split: Split, clips: data.CroppedClips, *,
             criterion: nn.Module, batch_size: int, workers: int, info: DistInfo
             ) -> Tuple[float, float]:
    """(mean loss, top-1) over the first second of every clip of the split; each rank scores a
    disjoint share."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    share = split_rank(len(split), rank=info.rank, world_size=info.world_size).tolist()
    for indices, audio in data.loader(clips, data.fixed_draws(share, batch_size),
                                      workers=workers, device=info.device,
                                      collate_fn=data.stack_clips):
        logits = model(frontend(audio.to(info.device))).float().cpu()
        y = split.y[indices]
        sums += torch.tensor([criterion(logits, y).item() * len(y),
                              (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    total = all_reduce_sum(sums.to(info.device)).cpu()
    return (total[0] / total[2]).item(), (total[1] / total[2]).item()


def check_args(args: argparse.Namespace, world_size: int) -> None:
    problems: List[str] = []
    if args.epochs < 1:
        problems.append("--epochs must be >= 1")
    problems += run_argument_problems(args, world_size)
    if args.warmup_epochs < 0 or args.lr <= 0 or args.weight_decay < 0:
        problems.append("--warmup-epochs and --weight-decay must be >= 0 and --lr > 0")
    if not 0.0 <= args.label_smoothing < 1.0:
        problems.append("--label-smoothing must be in [0, 1)")
    if args.time_shift < 0:
        problems.append("--time-shift must be >= 0")
    problems += spec_augment_problems(args)
    if problems:
        raise SystemExit("hear-suite train kwmlp: " + "; ".join(problems))


def main(args: argparse.Namespace) -> int:
    return run_distributed(args, check_args, run)


def run(args: argparse.Namespace, info: DistInfo) -> Dict[str, Any]:
    """Train (or resume), then score the best epoch on valid and test. Returns the provenance
    written into ``OUT/kwmlp.pt``."""
    out = Path(args.out)
    task = open_task(args.task_dir, KWMLPConfig.sample_rate)
    run_dir = RunDir(out, outputs=(BEST, WEIGHTS))
    resume_from = run_dir.resolve(args.resume_mode)
    config = KWMLPConfig(labels=tuple(task.labels), depth=args.depth, dim=args.dim,
                         survival_prob=args.survival_prob)
    frontend = build_frontend(config).to(info.device).eval().requires_grad_(False)
    splits = {split: Split(task, split) for split in SPLITS}
    log(f"{task.name}: " + ", ".join(f"{s} {len(d)}" for s, d in splits.items())
                 + f" clips, {len(task.labels)} classes; {info.world_size} process(es) on "
                   f"{info.device}")
    crop = data.Crop(config.chunk_samples, args.crop,
                     shift=round(args.time_shift * config.sample_rate / 1000))
    stream = data.EpochStream(
        data.CroppedClips(splits["train"].paths, crop, config.sample_rate),
        micro_batch=micro_batch_size(args, info.world_size),
        accumulate=args.accumulate, seed=args.seed, rank=info.rank,
        world_size=info.world_size, workers=args.workers, device=info.device)
    eval_clips = {s: first_seconds(splits[s], config) for s in ("valid", "test")}

    def evaluate_split(split: str) -> Tuple[float, float]:
        return evaluate(model, frontend, splits[split], eval_clips[split], criterion=criterion,
                        batch_size=args.batch_size, workers=args.workers, info=info)

    seed_everything(args.seed)  # same initial weights on every rank
    model = KWMLP(config).to(info.device)
    seed_everything(args.seed, info.rank)  # per-rank streams: depth drops, masks
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = stream.steps_per_epoch()
    scheduler = WarmupDecayLR(
        optimizer, warmup_steps=round(args.warmup_epochs * steps_per_epoch),
        total_steps=args.epochs * steps_per_epoch)

    key = {"config": config.to_dict(), "crop": args.crop, "time_shift": args.time_shift}
    start_epoch, step, best_acc, best_epoch, elapsed = 0, 0, None, 0, 0.0
    state = None
    if resume_from is not None:
        state = resume(resume_from, key, model=model, optimizer=optimizer,
                                scheduler=scheduler, info=info, seed=args.seed)
        start_epoch, step = state["epoch"], state["step"]
        best_acc, best_epoch = state["best_metric"], state["extra"]["best_epoch"]
        elapsed = state["extra"]["elapsed_s"]
        if state["extra"].get("epochs") != args.epochs:
            log(f"note: the schedule is re-planned from {state['extra'].get('epochs')} "
                         f"to {args.epochs} epochs")
    position = EpochPosition.from_state(state)
    metrics = MetricsLog(run_dir.metrics) if info.is_main else None
    if metrics is not None:
        metrics.truncate(start_epoch)

    def save_state(epoch_done: int, at: EpochPosition, at_step: int) -> None:
        save_run_state(
            run_dir.last, info=info, model=model, optimizer=optimizer, scheduler=scheduler,
            epoch=epoch_done, step=at_step, position=at, best_metric=best_acc,
            extra={**key, "best_epoch": best_epoch, "elapsed_s": elapsed, "epochs": args.epochs,
                   "world_size": info.world_size})

    # Stochastic depth drops whole blocks, so some parameters get no gradient in a step.
    forward = compiled(wrap_ddp(model, info, find_unused_parameters=True),
                                args.compile)
    stepper = Stepper(forward, optimizer, scheduler)
    loss_of = loss_function(forward, frontend, splits["train"], criterion, args, info.device)
    for epoch in range(start_epoch, args.epochs):
        if stop_now(step, args):
            break
        t0 = time.perf_counter()
        forward.train()
        position, step, lr, complete = train_epoch(
            stream.epoch(epoch, position.steps), stepper, loss_of, args=args, epoch=epoch,
            steps_per_epoch=steps_per_epoch, position=position, step=step,
            save=lambda at_step, at: save_state(epoch, at, at_step))
        elapsed += time.perf_counter() - t0
        if not complete:
            break
        train_loss, train_acc = epoch_means(position).tolist()
        position = EpochPosition()
        valid_loss, valid_acc = evaluate_split("valid")
        seconds = time.perf_counter() - t0
        if best_acc is None or valid_acc > best_acc:
            best_acc, best_epoch = valid_acc, epoch + 1
            if info.is_main:
                save_encoder(out / BEST, model, provenance={
                    "epoch": best_epoch, "valid_acc": valid_acc, "task_dir": str(args.task_dir)})
        if metrics is not None:
            metrics.append({"epoch": epoch + 1, "step": step, "lr": lr,
                            "train_loss": train_loss, "train_acc": train_acc,
                            "valid_loss": valid_loss, "valid_acc": valid_acc, "time_s": seconds})
            plot_curves(metrics.rows, run_dir.curves, CURVES)
        save_state(epoch + 1, position, step)
        log(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} "
                     f"acc {train_acc:.4f} | valid loss {valid_loss:.4f} acc {valid_acc:.4f} | "
                     f"{seconds:.1f} s")
    if stop_now(step, args):
        log(f"--max-steps {args.max_steps}: stopped at step {step}; rerun without it "
                     f"to continue from {run_dir.last}")
    elif start_epoch >= args.epochs:
        log(f"{run_dir.last} already has {start_epoch} epochs (--epochs "
                     f"{args.epochs}): scoring its best epoch")

    digest = check_replicas_identical(model)
    if args.save_rank_weights:
        checkpoint.save_atomic(model.state_dict(), out / f"rank{info.rank}.pt")
    if best_acc is None and info.is_main:  # stopped before the first epoch ended: these weights
        save_encoder(out / BEST, model, provenance={"step": step, "task_dir": str(args.task_dir)})
    barrier()  # best.pt is complete before any rank reads it
    best = checkpoint.load_checkpoint(out / BEST, FAMILY)
    model.load_state_dict(best["state_dict"], strict=True)
    valid_loss, valid_acc = evaluate_split("valid")
    test_loss, test_acc = evaluate_split("test")
    provenance = {
        "trainer": __name__,
        "command": shlex.join(sys.argv),
        "task_dir": str(Path(args.task_dir).resolve()),
        "task": task.name,
        "clips": {s: len(d) for s, d in splits.items()},
        "epochs": max(start_epoch, args.epochs),
        "steps": step,
        "best_epoch": best_epoch,
        "seed": args.seed,
        "valid_acc": valid_acc,
        "test_acc": test_acc,
        "train_time_s": round(elapsed, 1),
        "world_size": info.world_size,
        "device": info.device.type,
        "precision": args.precision,
        "last_epoch_weights_sha256": digest,
        "torch_version": str(torch.__version__),
        "hear_suite_version": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "args": plain_args(args),
    }
    if info.is_main:
        save_encoder(out / WEIGHTS, model, provenance=provenance)
    barrier()
    log((f"best epoch {best_epoch}" if best_epoch else f"the weights at step {step}")
                 + f": valid top-1 {valid_acc:.4f}, test top-1 {test_acc:.4f} -> {out / WEIGHTS}")
    return provenance
