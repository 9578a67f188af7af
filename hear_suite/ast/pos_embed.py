"""Positional encodings of the Audio Spectrogram Transformer (seed 003's study), for any grid.

A patch grid is ``(n_bands, n_cols)``: frequency bands x time columns. The sequence holds
``num_prefix`` tokens (CLS, optionally the DeiT distillation token) followed by the patches in
``order`` ``"freq_major"`` (AST: index = f * n_cols + t) or ``"time_major"`` (seed 003: index =
t * n_bands + f). Every module here takes the actual grid of its input, so nothing is tied to
the training length:

- :class:`AbsolutePosEmbed`: a learned table for the config's grid, resized to the input's grid
  (centre crop when smaller, bilinear interpolation when larger: :func:`resize_pos_grid`, the
  AST code's rule for ImageNet tables).
- :class:`BandPosEmbed`: a learned row per frequency band (+ prefix rows), tiled over time (the
  absolute half of "time ALiBi").
- :func:`alibi_bias`: the fixed ALiBi matrices, ``"2d"`` (half the heads time, half frequency,
  slopes ``2^-linspace(1, 8, H/2)``) or ``"time"`` (all heads, ``2^-linspace(1, 8, H)``).
- :class:`RelativePosition2D`: learned ``E_t``/``E_f`` tables shared by the heads of a block;
  the bias is built from ``(B, H, N, n_cols)`` and ``(B, H, N, n_bands)`` products and an
  ``(N,)`` key index shared by the batch, so the only ``N x N`` tensor is the bias itself (the
  reference code's ``(B, H, N, N)`` int64 gather index is never made).
- :class:`PEG`: CPVT's positional encoding generator, a depthwise 3x3 convolution over the
  patch grid added as a residual; prefix tokens are never convolved.

All biases ``R`` are added to ``Q K^T`` *before* the ``1/sqrt(d)`` scaling, as in seed 003's code.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Grid = Tuple[int, int]
ORDERS = ("freq_major", "time_major")


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"sequence order must be one of {ORDERS}, got {order!r}")
    return order


def patch_positions(grid: Grid, order: str, device: torch.device | str = "cpu"
                    ) -> Tuple[Tensor, Tensor]:
    """Band and column index of every patch token in sequence order: two ``(F * T,)`` int64."""
    n_bands, n_cols = grid
    f = torch.arange(n_bands, device=device)
    t = torch.arange(n_cols, device=device)
    if check_order(order) == "freq_major":
        return f.repeat_interleave(n_cols), t.repeat(n_bands)
    return f.repeat(n_cols), t.repeat_interleave(n_bands)


def tokens_to_grid(x: Tensor, grid: Grid, order: str) -> Tensor:
    """Patch tokens ``(B, F * T, D)`` in sequence order -> ``(B, D, F, T)``."""
    b, n, d = x.shape
    n_bands, n_cols = grid
    if n != n_bands * n_cols:
        raise ValueError(f"{n} patch tokens do not fill a {n_bands} x {n_cols} grid")
    if check_order(order) == "freq_major":
        return x.transpose(1, 2).reshape(b, d, n_bands, n_cols)
    return x.transpose(1, 2).reshape(b, d, n_cols, n_bands).transpose(2, 3)


def grid_to_tokens(x: Tensor, order: str) -> Tensor:
    """``(B, D, F, T)`` -> patch tokens ``(B, F * T, D)`` in sequence order."""
    if check_order(order) == "time_major":
        x = x.transpose(2, 3)
    return x.flatten(2).transpose(1, 2)


def resize_pos_grid(grid: Tensor, size: Grid) -> Tensor:
    """Resize a positional grid ``(B, D, F, T)`` to ``size``, each axis on its own: centre crop
    when it shrinks, bilinear interpolation when it grows (the AST code's rule for fitting the
    24 x 24 ImageNet table to 12 x 101)."""
    for axis, new in ((2, size[0]), (3, size[1])):
        old = grid.shape[axis]
        if new < old:
            start = old // 2 - new // 2
            grid = grid.narrow(axis, start, new)
        elif new > old:
            target = (new, grid.shape[3]) if axis == 2 else (grid.shape[2], new)
            grid = F.interpolate(grid, size=target, mode="bilinear", align_corners=False)
    return grid


class AbsolutePosEmbed(nn.Module):
    """Learned absolute table: ``num_prefix`` rows for the prefix tokens + one per patch of
    ``grid`` (stored in sequence ``order``). trunc-normal(0.02) init, as AST without ImageNet."""

    def __init__(self, *, dim: int, grid: Grid, num_prefix: int, order: str) -> None:
        super().__init__()
        self.grid, self.num_prefix, self.order = tuple(grid), num_prefix, check_order(order)
        self.weight = nn.Parameter(torch.zeros(1, num_prefix + grid[0] * grid[1], dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def table(self, grid: Grid) -> Tensor:
        """``(1, num_prefix + F * T, D)`` for ``grid`` (the stored table when it matches)."""
        if tuple(grid) == self.grid:
            return self.weight
        prefix, patches = self.weight[:, :self.num_prefix], self.weight[:, self.num_prefix:]
        g = resize_pos_grid(tokens_to_grid(patches, self.grid, self.order), grid)
        return torch.cat([prefix, grid_to_tokens(g, self.order)], dim=1)

    def forward(self, x: Tensor, grid: Grid) -> Tensor:
        return x + self.table(grid)


class BandPosEmbed(nn.Module):
    """Learned per-band table (``num_prefix + n_bands`` rows) tiled over the time columns."""

    def __init__(self, *, dim: int, n_bands: int, num_prefix: int, order: str) -> None:
        super().__init__()
        self.n_bands, self.num_prefix, self.order = n_bands, num_prefix, check_order(order)
        self.weight = nn.Parameter(torch.zeros(1, num_prefix + n_bands, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, grid: Grid) -> Tensor:
        if grid[0] != self.n_bands:
            raise ValueError(f"band table has {self.n_bands} bands, input grid has {grid[0]}")
        band, _ = patch_positions(grid, self.order, x.device)
        return x + torch.cat([self.weight[:, :self.num_prefix],
                              self.weight[:, self.num_prefix:][:, band]], dim=1)


def alibi_slopes(n_heads: int) -> Tensor:
    """Seed 003's slopes ``2^-linspace(1, 8, n)`` (not Press et al.'s ``2^(-8h/n)``)."""
    return 2.0 ** -torch.linspace(1.0, 8.0, n_heads)


def press_alibi_slopes(n_heads: int) -> Tensor:
    """Press et al.'s slopes ``m_h = 2^(-8h/n)``, h = 1..n (for reference and tests)."""
    return 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)


def alibi_bias(*, grid: Grid, order: str, n_heads: int, num_prefix: int, mode: str,
               device: torch.device | str = "cpu") -> Tensor:
    """Fixed ALiBi bias ``(H, P + N, P + N)`` (add to ``Q K^T`` before scaling).

    ``mode="2d"``: heads ``0..H/2-1`` get ``-m|dt|``, the others ``-m|df|``, ``m`` =
    :func:`alibi_slopes` ``(H/2)`` each; as in seed 003's code, patch queries may not attend to
    the prefix tokens in the time heads (``-inf``). ``mode="time"``: every head ``-m|dt|`` with
    :func:`alibi_slopes` ``(H)``. Pairs involving a prefix token have distance 0.
    """
    band, col = patch_positions(grid, order, device)
    p = num_prefix
    n = p + band.numel()
    dt = torch.zeros(n, n, device=device)
    df = torch.zeros(n, n, device=device)
    dt[p:, p:] = (col[None, :] - col[:, None]).abs().float()
    df[p:, p:] = (band[None, :] - band[:, None]).abs().float()
    if mode == "time":
        return -alibi_slopes(n_heads).to(device)[:, None, None] * dt
    if mode != "2d":
        raise ValueError(f"ALiBi mode must be '2d' or 'time', got {mode!r}")
    if n_heads % 2:
        raise ValueError(f"2-D ALiBi splits the heads in two halves: {n_heads} heads is odd")
    m = alibi_slopes(n_heads // 2).to(device)[:, None, None]
    time_heads = -m * dt
    time_heads[:, p:, :p] = float("-inf")
    return torch.cat([time_heads, -m * df], dim=0)


class RelativePosition2D(nn.Module):
    """Learned 2-D relative attention bias of one block (seed 003, after Huang et al.):
    ``R_ij = q_i . E_t[dt] + q_i . E_f[df]`` with ``dt = t_key - t_query`` (clamped to the
    table), ``E_t`` ``(2 T_max - 1, d_head)``, ``E_f`` ``(2 F_max - 1, d_head)`` shared by all
    heads; pairs involving a prefix token use distance 0; nothing is added to the values."""

    def __init__(self, *, head_dim: int, max_grid: Grid) -> None:
        super().__init__()
        self.max_grid = tuple(max_grid)
        self.time = nn.Parameter(torch.zeros(2 * max_grid[1] - 1, head_dim))
        self.freq = nn.Parameter(torch.zeros(2 * max_grid[0] - 1, head_dim))
        nn.init.trunc_normal_(self.time, std=0.02)
        nn.init.trunc_normal_(self.freq, std=0.02)

    @staticmethod
    def _axis_bias(q: Tensor, table: Tensor, pos: Tensor, size: int, num_prefix: int) -> Tensor:
        """Per-axis bias ``(B, H, N_all, N_all)`` from ``q (B, H, N_all, d)``, ``table
        (2 S - 1, d)`` and the patch positions ``pos (N,)`` on an axis of ``size`` positions."""
        centre = (table.shape[0] - 1) // 2
        qe = q @ table.t()                                           # (B, H, N_all, 2S-1)
        # query i x key position k (k = size stands for "a prefix key"): table index of the
        # distance k - pos_i, (N_all, size + 1), shared by the whole batch.
        dev = q.device
        key = torch.arange(size + 1, device=dev)
        qpos = torch.cat([torch.zeros(num_prefix, dtype=torch.long, device=dev), pos])
        idx = (key[None, :] - qpos[:, None]).clamp(-centre, centre) + centre
        idx[:, size] = centre                                        # prefix keys: distance 0
        idx[:num_prefix] = centre                                    # prefix queries: distance 0
        per_pos = qe.gather(-1, idx.expand(*qe.shape[:2], *idx.shape))  # (B, H, N_all, S + 1)
        kpos = torch.cat([torch.full((num_prefix,), size, device=dev), pos])
        return per_pos.index_select(-1, kpos)                        # (B, H, N_all, N_all)

    def forward(self, q: Tensor, *, grid: Grid, order: str, num_prefix: int) -> Tensor:
        """``q (B, H, P + N, d_head)`` -> bias ``(B, H, P + N, P + N)``."""
        band, col = patch_positions(grid, order, q.device)
        return (self._axis_bias(q, self.time, col, grid[1], num_prefix)
                + self._axis_bias(q, self.freq, band, grid[0], num_prefix))


class PEG(nn.Module):
    """CPVT's positional encoding generator on the patch grid: ``x + DWConv3x3(x)`` (zero
    padding 1, with bias). Prefix tokens pass unchanged, except that the first PEG of a model
    (``cls_vector=True``) adds a learned vector to them (seed 003's code)."""

    def __init__(self, *, dim: int, num_prefix: int, cls_vector: bool) -> None:
        super().__init__()
        self.num_prefix = num_prefix
        self.proj = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=True)
        self.cls_vector = nn.Parameter(torch.zeros(1, num_prefix, dim)) if cls_vector else None

    def forward(self, x: Tensor, grid: Grid, order: str) -> Tensor:
        prefix, patches = x[:, :self.num_prefix], x[:, self.num_prefix:]
        g = tokens_to_grid(patches, grid, order)
        patches = patches + grid_to_tokens(self.proj(g), order)
        if self.cls_vector is not None:
            prefix = prefix + self.cls_vector
        return torch.cat([prefix, patches], dim=1)


__all__ = ["ORDERS", "patch_positions", "tokens_to_grid", "grid_to_tokens", "resize_pos_grid",
           "AbsolutePosEmbed", "BandPosEmbed", "alibi_slopes", "press_alibi_slopes",
           "alibi_bias", "RelativePosition2D", "PEG"]
