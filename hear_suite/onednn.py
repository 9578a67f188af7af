"""Inference matrix products through oneDNN on the CPU.

PyTorch computes a float32 ``F.linear`` on the CPU with MKL's sgemm. On the AMD EPYC machines we
measure on, MKL runs at about half the speed of oneDNN's matmul for the small shapes of these
models (``(3136, 64) x (64, 256)``: 485 us vs 228 us on 2 cores; a 2048^3 product: 210 GFLOP/s
with MKL), and a GELU can be applied inside oneDNN's kernel instead of in a second pass over the
output. Both are IEEE float32 (no reduced-precision math); the results agree within float32
rounding, tested.

:func:`linear` uses oneDNN (through ``torch.ops.mkldnn._linear_pointwise``, the kernel
``torch.compile`` emits for frozen linear layers) when it can, and ``F.linear`` otherwise: on CUDA,
for other dtypes, when autograd needs the graph (the oneDNN op has no backward), under CPU
autocast, when PyTorch was built without oneDNN, or when ``HEAR_SUITE_ONEDNN=0`` is set. The
operator is private to PyTorch, so the first call checks it against ``F.linear`` on a small input
and falls back for good if it is missing or disagrees.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

ENABLED = os.environ.get("HEAR_SUITE_ONEDNN", "1") != "0"

# oneDNN post-op (attribute, algorithm) per activation; GELU's "none" algorithm is the exact erf
_ACTIVATIONS = {None: ("none", ""), "gelu": ("gelu", "none"), "relu": ("relu", "")}


def _reference(x: Tensor, weight: Tensor, bias: Optional[Tensor], activation: Optional[str]):
    y = F.linear(x, weight, bias)
    if activation == "gelu":
        return F.gelu(y)
    return F.relu(y) if activation == "relu" else y


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether the oneDNN linear kernel exists here and matches ``F.linear`` (+ activation)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        op = torch.ops.mkldnn._linear_pointwise
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in ((5, 3, 7), (4, 7), (4,)))
        with torch.no_grad():
            return all(torch.allclose(op(x, w, b, attr, [], algorithm), _reference(x, w, b, a),
                                      rtol=1e-5, atol=1e-5)
                       for a, (attr, algorithm) in _ACTIVATIONS.items())
    except (AttributeError, RuntimeError):
        return False


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *,
           activation: Optional[str] = None) -> Tensor:
    """``F.linear(x, weight, bias)``, then ``activation``: ``"gelu"`` (exact, erf) or ``"relu"``.

    ``x``: ``(..., in)``, ``weight``: ``(out, in)``, ``bias``: ``(out,)`` -> ``(..., out)``,
    contiguous. Computed by oneDNN when :func:`usable` says so, else by ``F.linear``.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(map(str, _ACTIVATIONS))}, "
                         f"got {activation!r}")
    if usable(x, weight, bias):
        attr, algorithm = _ACTIVATIONS[activation]
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias,
                                                  attr, [], algorithm)
    return _reference(x, weight, bias, activation)


def usable(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> bool:
    """oneDNN serves this call: float32 CPU tensors, no gradient wanted, non-empty input, no
    autocast."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not ENABLED or x.numel() == 0:
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if _cpu_autocast():  # the caller asked for autocast's lower precision
        return False
    return available()


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # PyTorch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled()
