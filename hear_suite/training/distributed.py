"""Processes and devices: :func:`init_distributed` reads torchrun's ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK`` (gloo on CPU, nccl on CUDA) and picks the device, a plain ``python`` run being a
world of one; :func:`run_distributed` is the body of every trainer's ``main``; the collectives
(:func:`barrier`, :func:`all_reduce_sum`, :func:`all_gather_objects`) are no-ops outside a
process group; :func:`wrap_ddp` / :func:`unwrap` put a model in and out of
``DistributedDataParallel``; :func:`check_replicas_identical` compares a digest of the weights
across ranks."""
from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, List

import torch
import torch.distributed as dist
from torch import Tensor, nn


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



def wrap_ddp(model: nn.Module, info: DistInfo, *,
             find_unused_parameters: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when running under torchrun, else itself."""
    if not info.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters)



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

