"""Learning-rate schedules: :class:`WarmupDecayLR`, a per-step linear warm-up then a cosine
decay to zero or an inverse square-root decay (:func:`warmup_decay_factor`), whose state is its
step count, so a resumed run with more epochs re-plans the remaining steps."""
from __future__ import annotations

import math
from typing import Any, Dict, List

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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

