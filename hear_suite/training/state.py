"""A run's directory and resumable state: :class:`RunDir` names a run's files and resolves the
resume mode, :func:`save_training_state` writes ``last.pt`` atomically (weights, optimizer,
schedule, every rank's RNG state, epoch, step and the trainer's extras),
:func:`save_run_state` does it from all ranks at once, and :func:`resume` reads a state back,
refuses one made for another run and restores it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from hear_suite import checkpoint
from hear_suite.training.args import RESUME_MODES
from hear_suite.training.distributed import (DistInfo, all_gather_objects, barrier,
                                             is_main_process, unwrap)
from hear_suite.training.metrics import log
from hear_suite.training.seeding import derive_seed, rng_state, seed_everything, set_rng_state
from hear_suite.training.steps import EpochPosition

PathLike = Union[str, Path]


STATE_FORMAT = "hear_suite_training_state"



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

