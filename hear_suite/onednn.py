"""Matrix products of linear layers through oneDNN on the CPU.

PyTorch computes a float32 ``F.linear`` on the CPU with MKL's sgemm. On AMD EPYC CPUs with
AVX-512 (Zen 4), MKL runs at less than half the speed of oneDNN's matmul
(``benchmarks/bench_kwmlp.py`` prints both on a 4096 x 1024 x 1024 product: about 217 vs 484
GFLOP/s on 2 cores), and a GELU can be applied inside oneDNN's kernel instead of in a second
pass over the output. On an AVX2-only EPYC (Zen 3) it is the other way round: MKL reaches about
150 GFLOP/s on 2 cores, near the FMA units' peak, oneDNN about 125, and its fused GELU costs more
than a separate one. So oneDNN is the default only where the CPU has AVX-512
(``torch.backends.cpu.get_cpu_capability()``); ``HEAR_SUITE_ONEDNN=1`` or ``0`` forces the
choice. Both are IEEE float32 (no reduced-precision math); the results agree within float32
rounding, tested.

:func:`linear` uses oneDNN (through ``torch.ops.mkldnn._linear_pointwise``, the kernel
``torch.compile`` emits for frozen linear layers) when it can, also under autograd (its own
backward, :class:`_Affine`), and ``F.linear`` otherwise: on CUDA, for other dtypes, under CPU
autocast and inside ``torch.compile``, when PyTorch was built without oneDNN, or when it is
not enabled (above). The operator is private to PyTorch, so the first call checks it
against ``F.linear`` on a small input and falls back for good if it is missing or disagrees.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor



def _enabled_by_default() -> bool:
    forced = os.environ.get("HEAR_SUITE_ONEDNN")
    if forced is not None:
        return forced != "0"
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


ENABLED = _enabled_by_default()

# oneDNN post-op (attribute, algorithm) per activation; GELU's "none" algorithm is the exact erf
_ACTIVATIONS = {None: ("none", ""), "gelu": ("gelu", "none"), "relu": ("relu", "")}


def _kernel(x: Tensor, weight: Tensor, bias: Optional[Tensor], activation: Optional[str] = None
            ) -> Tensor:
    """oneDNN's ``x @ weight.T + bias`` with the activation in the same kernel; ``weight``
    contiguous or a transposed view."""
    attr, algorithm = _ACTIVATIONS[activation]
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, attr, [], algorithm)


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether the oneDNN linear kernels exist here and match ``F.linear`` (with each activation,
    with a product, with a transposed weight)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b, m = (torch.randn(s, generator=g) for s in ((5, 3, 7), (4, 7), (4,), (5, 3, 4)))
        with torch.no_grad():
            plain = F.linear(x, w, b)
            return (all(torch.allclose(_kernel(x, w, b, a), _finish(plain, a), rtol=1e-5,
                                       atol=1e-5) for a in _ACTIVATIONS)
                    and torch.allclose(torch.ops.mkldnn._linear_pointwise.binary(x, m, w, b, "mul"),
                                       plain * m, rtol=1e-5, atol=1e-5)
                    and torch.allclose(_kernel(x, w.t().contiguous().t(), b), plain, rtol=1e-5,
                                       atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, *,
           activation: Optional[str] = None, multiply: Optional[Tensor] = None) -> Tensor:
    """``F.linear(x, weight, bias)``, then ``activation`` (``"gelu"``: exact, erf; ``"relu"``) or
    a product with ``multiply`` (same shape as the output).

    ``x``: ``(..., in)``, ``weight``: ``(out, in)``, ``bias``: ``(out,)`` -> ``(..., out)``,
    contiguous. Computed by oneDNN when :func:`usable` says so, else by ``F.linear``: without
    autograd the activation or product runs in the matmul's kernel; with autograd the matrix
    products of forward and backward are oneDNN's (:class:`_Affine`) and the activation or product
    a separate autograd op. ``weight`` may be a transposed view (``w.t()`` of a contiguous ``w``):
    oneDNN reads it in place, so ``A @ B`` with the large operand ``B`` on the right is
    ``linear(A, B.t())`` without a transposed copy.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(map(str, _ACTIVATIONS))}, "
                         f"got {activation!r}")
    if activation is not None and multiply is not None:
        raise ValueError("linear takes an activation or a multiply operand, not both")
    if not usable(x, weight, bias, multiply):
        return _finish(F.linear(x, weight, bias), activation, multiply)
    if not (weight.is_contiguous() or weight.t().is_contiguous()):
        weight = weight.contiguous()
    tensors = (x, weight, bias, multiply)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _finish(_Affine.apply(x, weight, bias), activation, multiply)
    if multiply is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x.contiguous(), multiply.contiguous(),
                                                         weight, bias, "mul")
    return _kernel(x, weight, bias, activation)


def _finish(y: Tensor, activation: Optional[str], multiply: Optional[Tensor] = None) -> Tensor:
    """The activation or product of :func:`linear` as separate ops (F.linear and autograd)."""
    if activation == "gelu":
        return F.gelu(y)
    if activation == "relu":
        return F.relu(y)
    return y if multiply is None else y * multiply


class _Affine(torch.autograd.Function):
    """``x @ weight.T + bias`` with oneDNN's matrix products in the forward and the backward pass
    (``grad_x = grad @ weight``, ``grad_weight = grad.T @ x``, ``grad_bias = grad.sum``)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.with_bias = bias is not None
        return _kernel(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        rows = grad.reshape(-1, grad.shape[-1])                          # (n, out)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _kernel(grad, weight.t(), None)                      # (..., in)
        if ctx.needs_input_grad[1]:
            inputs = x.reshape(-1, x.shape[-1]).contiguous()              # (n, in)
            grad_weight = _kernel(rows.t(), inputs.t(), None)             # (out, in)
        if ctx.with_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias


def usable(x: Tensor, weight: Tensor, bias: Optional[Tensor],
           multiply: Optional[Tensor] = None) -> bool:
    """oneDNN serves this call: float32 CPU tensors, non-empty input, no autocast, not inside
    ``torch.compile`` (which picks its own kernels)."""
    tensors = [t for t in (x, weight, bias, multiply) if t is not None]
    if not ENABLED or x.numel() == 0:
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if _cpu_autocast() or _compiling():  # autocast: the caller asked for lower precision
        return False
    return available()


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # PyTorch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled()


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling")
                and compiler.is_compiling())
