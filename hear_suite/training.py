"""Training plumbing shared by the hear_suite trainers (model-agnostic).

- Processes: :func:`init_distributed` reads torchrun's ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``
  (gloo on CPU, nccl on CUDA) and picks the device; a plain ``python`` run is a world of one.
- Randomness: :func:`seed_everything` seeds python, numpy and torch; :func:`rng_state` /
  :func:`set_rng_state` capture and restore them as tensors (loadable with ``weights_only``).
- Data order: :func:`shard_indices` is a deterministic ``DistributedSampler``: the same
  permutation on every rank for an epoch, one equal-length slice per rank (the streams of
  :mod:`hear_suite.data` build on it).
- Steps: :class:`Stepper` takes one optimizer step from ``--accumulate`` micro-batches (DDP
  synchronises once per step), :func:`autocast` is ``--precision bf16``, :func:`train_epoch` runs
  an epoch from a mid-epoch :class:`EpochPosition` and writes ``last.pt`` every
  ``--checkpoint-every`` steps and at ``--max-steps``; :func:`compiled` is ``--compile``.
- Schedule: :class:`WarmupDecayLR`, linear warm-up then cosine to zero (or 1/sqrt), per batch.
- Augmentation: :func:`spec_augment` masks time/frequency bands of ``(B, F, T)`` features.
- Runs: :class:`RunDir` names a run's files; :func:`save_training_state` writes ``last.pt``
  atomically; :class:`MetricsLog` keeps ``metrics.csv`` (one row per epoch, rewritten on resume
  without duplicates) and :func:`plot_curves` draws ``curves.png``.
- Replicas: :func:`check_replicas_identical` compares a digest of the weights across ranks.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import (Any, Callable, ContextManager, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, TypeVar, Union)

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from hear_suite import checkpoint

T = TypeVar("T")
PathLike = Union[str, Path]
RESUME_MODES = ("auto", "resume", "restart")
PRECISIONS = ("fp32", "bf16")
STATE_FORMAT = "hear_suite_training_state"


# ---------------------------------------------------------------------------------------------
# command line


def add_spec_augment_arguments(group: Any, *, time_width: int, freq_width: int,
                               freq_help: str) -> None:
    """``--time-masks``, ``--time-mask-width``, ``--freq-masks``, ``--freq-mask-width`` (2 masks
    per axis by default) for :func:`spec_augment_from_args`; counts and widths must be >= 0."""
    group.add_argument("--time-masks", type=int, default=2)
    group.add_argument("--time-mask-width", type=int, default=time_width,
                       help="max frames per time mask")
    group.add_argument("--freq-masks", type=int, default=2)
    group.add_argument("--freq-mask-width", type=int, default=freq_width, help=freq_help)


def spec_augment_problems(args: argparse.Namespace) -> List[str]:
    if min(args.time_masks, args.time_mask_width, args.freq_masks, args.freq_mask_width) < 0:
        return ["SpecAugment mask counts and widths must be >= 0"]
    return []


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every trainer shares: ``--out``, ``--seed``, ``--device``, ``--workers`` and the
    resume mode (``--resume`` / ``--restart``; by default a run resumes if ``OUT/last.pt``
    exists)."""
    parser.add_argument("--out", type=Path, required=True,
                        help="run directory (last.pt, best.pt, metrics.csv, curves.png, weights)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (one GPU per torchrun process), else CPU")
    parser.add_argument("--workers", type=int, default=4,
                        help="data-loading worker processes per rank (default 4)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="resume_mode", action="store_const", const="resume",
                      help="continue from OUT/last.pt; fail if it does not exist")
    mode.add_argument("--restart", dest="resume_mode", action="store_const", const="restart",
                      help="discard OUT/last.pt and the run's outputs and start over")
    parser.set_defaults(resume_mode="auto")
    g = parser.add_argument_group("steps and precision")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop after N optimizer steps in all (resumed ones count), write last.pt "
                        "and loadable weights (a smoke run; rerun without it to continue)")
    g.add_argument("--checkpoint-every", type=int, default=1000,
                   help="also write last.pt every N optimizer steps within an epoch, so a long "
                        "epoch resumes where it stopped (0: at epoch ends only)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per optimizer step (gradient accumulation); the batch "
                        "size stays the global batch of one step")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: the model's forward under bfloat16 autocast (the frontend and "
                        "the loss stay float32)")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the model's training forward (first steps are slow)")


def run_argument_problems(args: argparse.Namespace, world_size: int) -> List[str]:
    """What is wrong with the arguments of :func:`add_run_arguments` (and ``--batch-size``, the
    global batch of one optimizer step, which must split into ``world_size x --accumulate``
    micro-batches)."""
    problems: List[str] = []
    if args.workers < 0:
        problems.append("--workers must be >= 0")
    if args.max_steps is not None and args.max_steps < 1:
        problems.append("--max-steps must be >= 1")
    if args.checkpoint_every < 0:
        problems.append("--checkpoint-every must be >= 0")
    if args.accumulate < 1:
        problems.append("--accumulate must be >= 1")
    elif args.batch_size < 1 or args.batch_size % (world_size * args.accumulate):
        problems.append(f"--batch-size {args.batch_size} must be a positive multiple of the "
                        f"number of processes x --accumulate ({world_size} x {args.accumulate})")
    return problems


def micro_batch_size(args: argparse.Namespace, world_size: int) -> int:
    """Examples per micro-batch on one rank."""
    return args.batch_size // (world_size * args.accumulate)


def plain_args(args: argparse.Namespace) -> Dict[str, Any]:
    """``args`` as plain values for checkpoints (paths as strings, callables dropped)."""
    out: Dict[str, Any] = {}
    for key, value in vars(args).items():
        if callable(value):
            continue
        out[key] = str(value) if isinstance(value, Path) else value
    return out


# ---------------------------------------------------------------------------------------------
# processes and devices


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs "
                           f"are visible: start at most one process per GPU")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (nccl on CUDA, gloo on CPU) and
    select this process's device. Call :func:`cleanup_distributed` at the end."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def run_distributed(args: argparse.Namespace,
                    check: Callable[[argparse.Namespace, int], None],
                    run: Callable[[argparse.Namespace, "DistInfo"], Any]) -> int:
    """The body of every trainer's ``main``: join torchrun's process group (if any), check the
    arguments against the world size, run, and always leave the group."""
    info = init_distributed(args.device)
    try:
        check(args, info.world_size)
        run(args, info)
    finally:
        cleanup_distributed()
    return 0


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True on rank 0 (and in a non-distributed run)."""
    return not _distributed() or dist.get_rank() == 0


def barrier() -> None:
    if _distributed():
        dist.barrier()


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over all ranks (a copy; ``x`` itself is left alone)."""
    x = x.clone()
    if _distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_gather_objects(obj: Any) -> List[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` when not distributed)."""
    if not _distributed():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """A tqdm bar on rank 0; the bare iterable elsewhere."""
    return tqdm(iterable, dynamic_ncols=True, **kwargs) if is_main_process() else iterable


def log(*parts: Any) -> None:
    """``print`` on rank 0 only (through tqdm, so open bars are not broken)."""
    if is_main_process():
        tqdm.write(" ".join(str(p) for p in parts))


# ---------------------------------------------------------------------------------------------
# randomness


def derive_seed(seed: int, *parts: int) -> int:
    """A 32-bit seed from ``seed`` and e.g. ``(rank, epoch)``: distinct inputs, distinct seeds."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (CPU and CUDA). ``rank`` 0 uses ``seed`` itself, so a model
    built right after seeding with the same ``seed`` is identical on every rank seeded with
    ``rank=0``; other ranks get :func:`derive_seed` ``(seed, rank)``."""
    s = seed if rank == 0 else derive_seed(seed, rank)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device


def rng_state(device: Optional[torch.device] = None) -> Dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain values (``weights_only``-safe).
    With a CUDA ``device``, that device's generator too."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: Optional[torch.device] = None) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


# ---------------------------------------------------------------------------------------------
# data order


def shard_indices(n: int, *, rank: int, world_size: int, epoch: int, seed: int,
                  shuffle: bool = True) -> Tensor:
    """This rank's sample indices for ``epoch``: ``(ceil(n / world_size),)`` int64.

    Like ``DistributedSampler``: one permutation of ``range(n)`` from ``(seed, epoch)``, shared by
    all ranks, padded by wrapping to a multiple of ``world_size`` (so every rank runs the same
    number of steps), then every ``world_size``-th index from ``rank``. Independent of the
    global RNG, so it neither consumes nor depends on it.
    """
    if n < 1:
        raise ValueError("cannot shard an empty dataset")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    if shuffle:
        g = torch.Generator().manual_seed(derive_seed(seed, epoch))
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if total > n:
        order = torch.cat([order, order.repeat(math.ceil((total - n) / n))[: total - n]])
    return order[rank:total:world_size]


def split_rank(n: int, *, rank: int, world_size: int) -> Tensor:
    """Indices ``rank, rank + world_size, ...`` of ``range(n)``: a disjoint, unpadded share for
    evaluation (sum the ranks' results with :func:`all_reduce_sum`)."""
    return torch.arange(rank, n, world_size)


# ---------------------------------------------------------------------------------------------
# schedule and augmentation


DECAYS = ("cosine", "inverse_sqrt")


def warmup_decay_factor(step: int, *, warmup_steps: int, total_steps: int,
                        decay: str = "cosine") -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based): ``(step + 1) / warmup``
    during warm-up, then ``cosine``: a half cosine from 1 down to 0 at ``total_steps``, or
    ``inverse_sqrt``: ``sqrt(warmup / (step + 1))`` (seed 003's schedule; no end)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "inverse_sqrt":
        return math.sqrt(max(1, warmup_steps) / (step + 1))
    done = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))


class WarmupDecayLR(LRScheduler):
    """Per-step linear warm-up then cosine decay to zero, or inverse square-root decay
    (:func:`warmup_decay_factor`).

    Its state is the step count. Loading a state keeps *this* instance's plan (``warmup_steps``,
    ``total_steps``), so a resumed run with more epochs re-plans the remaining steps, and sets the
    optimizer's learning rates for the restored step.
    """

    def __init__(self, optimizer: Optimizer, *, warmup_steps: int, total_steps: int,
                 decay: str = "cosine") -> None:
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got "
                             f"{warmup_steps} and {total_steps}")
        if decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.decay = decay
        super().__init__(optimizer)

    def get_lr(self) -> List[float]:
        f = warmup_decay_factor(self.last_epoch, warmup_steps=self.warmup_steps,
                                total_steps=self.total_steps, decay=self.decay)
        return [base * f for base in self.base_lrs]

    def state_dict(self) -> Dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                "_step_count": self._step_count}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._step_count = int(state_dict["_step_count"])
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


def _band_mask(batch: int, size: int, n_masks: int, max_width: int,
               generator: Optional[torch.Generator]) -> Tensor:
    """``(batch, size)`` bool: ``n_masks`` bands per row, width uniform in ``0..max_width``."""
    mask = torch.zeros(batch, size, dtype=torch.bool)
    pos = torch.arange(size)
    for _ in range(n_masks):
        width = torch.randint(0, min(max_width, size) + 1, (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (size - width + 1)).long()
        mask |= (pos >= start) & (pos < start + width)
    return mask


def spec_augment(x: Tensor, *, time_masks: int, time_width: int, freq_masks: int,
                 freq_width: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """SpecAugment masking of features ``x (B, F, T)``: per example, ``time_masks`` bands of
    0..``time_width`` frames and ``freq_masks`` bands of 0..``freq_width`` bins set to 0.

    The bands are drawn on the CPU (from ``generator`` or torch's global RNG), so the same seed
    gives the same masks on any device. Returns a new tensor of the same shape.
    """
    if x.ndim != 3:
        raise ValueError(f"spec_augment expects (batch, freq, time), got shape {tuple(x.shape)}")
    b, f, t = x.shape
    keep = ~(_band_mask(b, t, time_masks, time_width, generator)[:, None, :]
             | _band_mask(b, f, freq_masks, freq_width, generator)[:, :, None])
    return x * keep.to(device=x.device, dtype=x.dtype)


def spec_augment_from_args(x: Tensor, args: argparse.Namespace) -> Tensor:
    """:func:`spec_augment` with the masks of :func:`add_spec_augment_arguments`."""
    return spec_augment(x, time_masks=args.time_masks, time_width=args.time_mask_width,
                        freq_masks=args.freq_masks, freq_width=args.freq_mask_width)


# ---------------------------------------------------------------------------------------------
# optimizer steps


def autocast(device: torch.device, precision: str) -> ContextManager:
    """bfloat16 autocast on ``device`` for ``precision="bf16"``, else nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class Stepper:
    """One optimizer step from a group of micro-batches.

    ``step(group, loss_of)`` calls ``loss_of(micro_batch) -> (mean loss, examples, extra)`` for
    each (``extra``: sums the trainer wants per epoch, e.g. correct predictions), back-propagates
    each loss weighted by its share of the group's examples (the gradient of the mean over the
    group, however it is split), lets DDP synchronise gradients only on the last micro-batch,
    clips gradient values to ``clip_value`` (0: off), then steps optimizer and schedule.
    Returns ``[loss x examples, examples, *extra]`` summed over the group (float64) and the
    learning rate the step used.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer, scheduler: LRScheduler, *,
                 clip_value: float = 0.0) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.clip_value = clip_value

    def step(self, group: Sequence[T],
             loss_of: Callable[[T], Tuple[Tensor, int, Sequence[float]]]) -> Tuple[Tensor, float]:
        self.optimizer.zero_grad(set_to_none=True)
        sums: List[Tensor] = []
        for k, micro in enumerate(group):
            last = k == len(group) - 1
            ddp = getattr(self.model, "_orig_mod", self.model)  # under torch.compile
            no_sync = isinstance(ddp, nn.parallel.DistributedDataParallel) and not last
            with ddp.no_sync() if no_sync else nullcontext():
                loss, n, extra = loss_of(micro)
                # The group's example count is known only after the last micro-batch: weight
                # each loss by its examples now, divide the summed gradient by the total below.
                (loss * n).backward()
            sums.append(torch.tensor([loss.item() * n, n, *extra], dtype=torch.float64))
        total = sum(sums)
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.div_(total[1].item())
        if self.clip_value > 0:
            nn.utils.clip_grad_value_(self.model.parameters(), self.clip_value)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        return total, lr


@dataclass
class EpochPosition:
    """How far into an epoch a run is: optimizer ``steps`` taken in it and the running ``sums``
    of its metrics (saved in ``last.pt`` mid-epoch so a resumed epoch reports the same means)."""

    steps: int = 0
    sums: Optional[List[float]] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"steps": self.steps, "sums": self.sums}

    @classmethod
    def from_state(cls, state: Optional[Mapping[str, Any]]) -> "EpochPosition":
        saved = (state or {}).get("extra", {}).get("in_epoch") or {}
        return cls(int(saved.get("steps", 0)), saved.get("sums"))


def stop_now(step: int, args: argparse.Namespace) -> bool:
    """True when ``--max-steps`` is reached at optimizer step ``step``."""
    return args.max_steps is not None and step >= args.max_steps


def checkpoint_now(step: int, args: argparse.Namespace) -> bool:
    """True when a mid-epoch ``last.pt`` is due after optimizer step ``step``."""
    return stop_now(step, args) or (args.checkpoint_every > 0
                                     and step % args.checkpoint_every == 0)


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (``--compile``), else ``model``. The compiled
    wrapper shares the parameters; save and evaluate with the plain module."""
    return torch.compile(model) if enabled else model


def train_epoch(groups: Iterable[Sequence[T]], stepper: Stepper,
                loss_of: Callable[[T], Tuple[Tensor, int, Sequence[float]]], *,
                args: argparse.Namespace, epoch: int, steps_per_epoch: int,
                position: EpochPosition, step: int,
                save: Callable[[int, EpochPosition], None]
                ) -> Tuple[EpochPosition, int, float, bool]:
    """The optimizer steps of ``epoch`` from ``position`` on (``groups``: the micro-batch groups
    of the remaining steps). After a step for which :func:`checkpoint_now` holds (except the
    epoch's last, which the caller saves), ``save(step, position)`` writes ``last.pt``; at
    ``--max-steps`` the epoch stops there. Returns the new position (``sums``: the epoch's
    :class:`Stepper` sums so far), the step count, the last learning rate and whether the epoch
    is complete."""
    done, lr = position.steps, float("nan")
    sums = torch.tensor(position.sums, dtype=torch.float64) if position.sums else None
    bar = progress(groups, total=steps_per_epoch, initial=done,
                   desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
    for group in bar:
        step_sums, lr = stepper.step(group, loss_of)
        sums = step_sums if sums is None else sums + step_sums
        done, step = done + 1, step + 1
        position = EpochPosition(done, sums.tolist())
        if done % 10 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.3f}")
        if done < steps_per_epoch and checkpoint_now(step, args):
            save(step, position)
            if stop_now(step, args):
                return position, step, lr, False
    return position, step, lr, True


def epoch_means(position: EpochPosition) -> Tensor:
    """An epoch's summed metrics over all ranks, per example: ``[mean loss, *extra / n]``."""
    total = all_reduce_sum(torch.tensor(position.sums, dtype=torch.float64))
    return torch.cat([total[:1], total[2:]]) / total[1]


# ---------------------------------------------------------------------------------------------
# run directory, training state, metrics


class RunDir:
    """The files of one training run under ``path``: ``last.pt`` (resumable state),
    ``metrics.csv``, ``curves.png``, plus the trainer's own ``outputs`` (e.g. ``best.pt``)."""

    def __init__(self, path: PathLike, *, outputs: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.metrics = self.path / "metrics.csv"
        self.curves = self.path / "curves.png"
        self.outputs = [self.path / name for name in outputs]

    def resolve(self, mode: str) -> Optional[Path]:
        """The state to resume from under resume ``mode`` (``auto``, ``resume``, ``restart``), or
        None to start afresh. ``restart`` deletes the run's files on rank 0; call it on every
        rank (it ends with a barrier so no rank sees a file rank 0 is deleting)."""
        if mode not in RESUME_MODES:
            raise ValueError(f"resume mode must be one of {RESUME_MODES}, got {mode!r}")
        barrier()
        if mode == "restart" and is_main_process():
            for p in (self.last, self.metrics, self.curves, *self.outputs):
                p.unlink(missing_ok=True)
        barrier()
        if mode == "restart":
            return None
        if self.last.is_file():
            return self.last
        if mode == "resume":
            raise FileNotFoundError(f"--resume: no training state at {self.last}")
        return None


def save_training_state(path: PathLike, *, model: nn.Module, optimizer: Optimizer,
                        scheduler: LRScheduler, epoch: int, step: int,
                        rng: Sequence[Mapping[str, Any]], best_metric: Optional[float],
                        extra: Optional[Mapping[str, Any]] = None) -> None:
    """Write a resumable state atomically. ``epoch``: epochs completed; ``step``: optimizer steps
    taken; ``rng``: :func:`rng_state` of every rank, in rank order; ``extra``: plain values the
    trainer needs back (model config, best epoch, elapsed time, ...)."""
    checkpoint.save_atomic({
        "format": STATE_FORMAT,
        "epoch": int(epoch),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": list(rng),
        "best_metric": best_metric,
        "extra": dict(extra or {}),
    }, path)


def load_training_state(path: PathLike) -> Dict[str, Any]:
    """Read a state written by :func:`save_training_state` (``weights_only``, on the CPU)."""
    state = checkpoint.load_file(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a hear_suite training state")
    return state


def restore_training_state(state: Mapping[str, Any], *, model: nn.Module, optimizer: Optimizer,
                           scheduler: LRScheduler, info: DistInfo, seed: int) -> None:
    """Load weights, optimizer and scheduler from ``state`` and this rank's RNG state. If the run
    was saved by a different number of processes, the RNGs are reseeded from ``(seed, rank,
    epoch)`` instead: the run continues, though not bit-identically."""
    unwrap(model).load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rngs = state["rng"]
    if len(rngs) == info.world_size:
        set_rng_state(rngs[info.rank], info.device)
    else:
        log(f"note: state saved by {len(rngs)} process(es), resuming with {info.world_size}: "
            f"random streams reseeded")
        seed_everything(derive_seed(seed, state["epoch"]), info.rank)


def save_run_state(path: PathLike, *, info: DistInfo, model: nn.Module, optimizer: Optimizer,
                   scheduler: LRScheduler, epoch: int, step: int, position: "EpochPosition",
                   best_metric: Optional[float], extra: Mapping[str, Any]) -> None:
    """:func:`save_training_state` from every rank at once: gathers all ranks' RNG states (a
    collective: call it on every rank), rank 0 writes, with ``position`` as
    ``extra["in_epoch"]`` (``epoch``: epochs completed; ``position``: steps into the next)."""
    rngs = all_gather_objects(rng_state(info.device))
    if info.is_main:
        save_training_state(path, model=model, optimizer=optimizer, scheduler=scheduler,
                            epoch=epoch, step=step, rng=rngs, best_metric=best_metric,
                            extra={**extra, "in_epoch": position.to_dict()})


def resume(path: PathLike, key: Mapping[str, Any], *, model: nn.Module, optimizer: Optimizer,
           scheduler: LRScheduler, info: DistInfo, seed: int,
           state: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Read the state at ``path`` (or take ``state``, already read from it), refuse it unless its
    ``extra`` holds ``key`` (what defines the run: model config, corpus, ...), restore it
    (:func:`restore_training_state`) and return it."""
    state = dict(state) if state is not None else load_training_state(path)
    if {k: state["extra"].get(k) for k in key} != dict(key):
        raise SystemExit(f"{path} was made for another model or data; use --restart or "
                         f"another --out")
    log(f"resuming {path} after epoch {state['epoch']} (step {state['step']})")
    restore_training_state(state, model=model, optimizer=optimizer, scheduler=scheduler,
                           info=info, seed=seed)
    return state


def wrap_ddp(model: nn.Module, info: DistInfo, *,
             find_unused_parameters: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when running under torchrun, else itself."""
    if not info.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters)


class MetricsLog:
    """Per-epoch metrics in a CSV file, one row per epoch (column ``epoch``, 1-based).

    The whole (small) file is rewritten atomically on every change; a row for an epoch that is
    already present replaces it, so resumed runs never duplicate rows.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.rows: List[Dict[str, float]] = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                for row in csv.DictReader(f):
                    self.rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})

    def truncate(self, last_epoch: int) -> None:
        """Drop rows after ``last_epoch`` (epochs whose training state was never saved)."""
        kept = [r for r in self.rows if r["epoch"] <= last_epoch]
        if len(kept) != len(self.rows):
            self.rows = kept
            self._write()

    def append(self, row: Mapping[str, float]) -> None:
        if "epoch" not in row:
            raise ValueError("a metrics row needs an 'epoch'")
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [dict(row)]
        self.rows.sort(key=lambda r: r["epoch"])
        self._write()

    def _write(self) -> None:
        columns: List[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (int(v) if k in ("epoch", "step") else f"{v:.6g}")
                                 for k, v in row.items()})
        os.replace(tmp, self.path)


def plot_curves(rows: Sequence[Mapping[str, float]], path: PathLike,
                panels: Mapping[str, Sequence[str]]) -> None:
    """One PNG with a panel per entry of ``panels`` (title -> metric columns) against epoch,
    e.g. ``{"loss": ["train_loss", "valid_loss"], "lr": ["lr"]}``. Missing columns are skipped.
    Uses the Agg canvas directly: no pyplot, no global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 3.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    epochs = [r["epoch"] for r in rows]
    for i, (title, columns) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for col in columns:
            pts = [(e, r[col]) for e, r in zip(epochs, rows) if col in r]
            if pts:
                ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=col)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize="small")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# replicas


def weights_digest(module: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``module``'s state dict."""
    h = hashlib.sha256()
    for name, t in unwrap(module).state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas_identical(module: nn.Module) -> str:
    """Raise ``RuntimeError`` unless every rank holds bit-identical weights; return the digest."""
    digests = all_gather_objects(weights_digest(module))
    if len(set(digests)) != 1:
        raise RuntimeError(f"replicas diverged: weight digests per rank {digests}")
    return digests[0]


def batches(indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Consecutive slices of ``indices`` of ``batch_size`` (the last one may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    yield from indices.split(batch_size)
