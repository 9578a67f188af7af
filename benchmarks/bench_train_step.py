"""Benchmark one training step (forward, backward, AdamW) of kwmlp and of the shipped AST
configuration, with ``hear_suite.onednn``'s kernels and with ``F.linear``.

    python benchmarks/bench_train_step.py [--repeats 10]

The models' own training forward on random features (kwmlp: 64 MFCC chunks, without stochastic
depth so every step does the same work; AST: 32 log-mel windows), so the figure is the model's
share of a trainer's step, not data loading. Each round times both settings back to back; the
lines give medians and the median of the rounds' ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import median_ratio, onednn_set, timed_rounds  # noqa: E402

import hear_suite.ast as ast  # noqa: E402
from hear_suite.ast.model import AST  # noqa: E402
from hear_suite.kwmlp.model import KWMLP, KWMLPConfig  # noqa: E402


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    kw = KWMLPConfig(survival_prob=1.0)
    ast_config = ast.load_model().config
    cases = {
        "kwmlp, 64 chunks": (KWMLP(kw), torch.randn(64, kw.n_mfcc, kw.num_frames, generator=g),
                             torch.randint(0, kw.num_classes, (64,), generator=g)),
        f"ast ({ast_config.depth} x {ast_config.dim}), 32 windows": (
            AST(ast_config),
            torch.randn(32, ast_config.n_mels, ast_config.window_frames, generator=g),
            torch.randint(0, ast_config.num_classes, (32,), generator=g)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for name, (model, x, y) in cases.items():
        step = training_step(model, x, y)

        def onednn_step() -> None:
            with onednn_set(True):
                step()

        def plain_step() -> None:
            with onednn_set(False):
                step()

        fast, slow = timed_rounds([onednn_step, plain_step], args.repeats, cuda=False)
        print(f"training step, {name}: with oneDNN kernels {1000 * statistics.median(fast):6.0f} "
              f"ms, with F.linear (HEAR_SUITE_ONEDNN=0) {1000 * statistics.median(slow):6.0f} ms, "
              f"ratio {median_ratio(slow, fast):.2f}")


if __name__ == "__main__":
    main()
