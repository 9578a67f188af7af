"""Optimizer steps: :class:`Stepper` takes one step from ``--accumulate`` micro-batches (DDP
synchronises once per step), :func:`autocast` is ``--precision bf16``, :func:`compiled` is
``--compile``, and :func:`train_epoch` runs an epoch from a mid-epoch :class:`EpochPosition`,
writing ``last.pt`` every ``--checkpoint-every`` steps and stopping at ``--max-steps``;
:func:`epoch_means` averages an epoch's sums over all ranks."""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from dataclasses import dataclass
from typing import (Any, Callable, ContextManager, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar)

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from hear_suite.training.args import PRECISIONS
from hear_suite.training.distributed import all_reduce_sum
from hear_suite.training.metrics import progress

T = TypeVar("T")


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

