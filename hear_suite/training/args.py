"""The command-line arguments every trainer shares (``--workers``, ``--max-steps``,
``--checkpoint-every``, ``--accumulate``, ``--precision``, ``--compile``, resume modes, device):
:func:`add_run_arguments` declares them, :func:`run_argument_problems` says what is wrong with
them for a world size, :func:`micro_batch_size` splits ``--batch-size`` over processes and
micro-batches, and :func:`plain_args` turns them into plain values for checkpoints."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List


RESUME_MODES = ("auto", "resume", "restart")



PRECISIONS = ("fp32", "bf16")



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

