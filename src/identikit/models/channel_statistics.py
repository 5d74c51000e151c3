"""Per-channel mean and biased variance of a batch-norm layer's input, for each group of rows:
the statistics DeepInversion (Yin et al., CVPR 2020) matches to the ones the layer stored.

``torch.var_mean`` over (0, 2, 3) gives the same numbers, but on a CPU it reduces a
channels-last tensor element by element with Welford's update, and its backward is several
passes over the input: on EfficientNet-Lite0 (49 layers, 40 images at 224 x 224, a 2-core AMD
EPYC) the two were 45% of a whole gradient step. Here instead:

- forward, two passes over a view of the input in its own memory order (``(N, L, C)`` when
  channels last, ``(N, C, L)`` when contiguous), so every reduction is one PyTorch sum along
  memory: the sums of each row give the means, then the rows less their group's means, taken
  a few rows at a time through a buffer that stays in the cache, give the variances by the
  corrected two-pass algorithm (sum of squares less the square of the sum, both centred; Chan,
  Golub & LeVeque 1983, "Algorithms for computing the sample variance"). Centring first keeps
  float32's digits, which E[x^2] - E[x]^2 loses on inputs far from zero, and the correction
  those that the mean's own rounding would cost when the spread is tiny beside the mean.
- backward, one fused element-wise pass: d mean / dx = 1/M and d var / dx = 2 (x - mean) / M,
  so dx = a + b x with per-row, per-channel a = (g_mean - 2 g_var mean) / M and
  b = 2 g_var / M (``torch.addcmul``).

Only first-order gradients are given (the backward is not itself differentiable); a gradient
step needs no more.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from identikit.base.errors import IdentikitError

CHUNK_ELEMENTS = 1 << 21
"""About how many elements the variance pass centres and squares at once (8 MiB of float32):
small enough to stay in a CPU's cache, large enough for few calls (each a parallel region,
which a busy machine delays). From 2^18 to 2^22 took the same time on one core of the 2-core
AMD EPYC (32 MiB L3), 2^24 and all at once 1.7 times as long."""


def channel_moments(
    x: torch.Tensor, groups: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``x`` (N, C, ...) over its rows and every
    position, for each group of rows (``groups`` (N,) numbers them 0..G-1, every group used;
    None: one group): two (G, C) tensors, differentiable once."""
    rows = x.shape[0]
    if groups is None:
        groups = torch.zeros(rows, dtype=torch.long, device=x.device)
        count = 1
    else:
        count = int(groups.max()) + 1 if len(groups) == rows and rows else 0
        if not count or int(groups.min()) < 0 or bool((torch.bincount(groups) == 0).any()):
            raise IdentikitError(
                f"batch-norm statistics: groups must number each of the {rows} rows 0..G-1, "
                "every group used"
            )
    mean, var = _ChannelMoments.apply(x, groups, count)  # type: ignore[no-untyped-call]
    return mean, var


class _ChannelMoments(torch.autograd.Function):
    """(x, groups, number of groups) -> (mean, var), each (G, C); see the module's docstring."""

    @staticmethod
    def forward(
        x: torch.Tensor, groups: torch.Tensor, count: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        view, channel_axis = _memory_view(x)
        position_axis = 3 - channel_axis  # the view's other axis, (N, C, L) or (N, L, C)
        sizes = _group_sizes(x, groups, count).unsqueeze(1)
        totals = x.new_zeros(count, x.shape[1])
        mean = totals.index_add(0, groups, view.sum(position_axis)) / sizes
        residues, squares = _centred_sums(view, position_axis, mean[groups])
        residue = totals.index_add(0, groups, residues)
        # Less the square of what the rounded mean left (the corrected two-pass algorithm).
        return mean, (totals.index_add(0, groups, squares) - residue.square() / sizes) / sizes

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple[Any, ...], output: Any) -> None:
        x, groups, count = inputs
        ctx.save_for_backward(x, groups, output[0])
        ctx.count = count  # type: ignore[attr-defined]

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_mean: torch.Tensor, grad_var: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        x, groups, mean = ctx.saved_tensors
        sizes = _group_sizes(x, groups, ctx.count).unsqueeze(1)
        slope = 2 * grad_var / sizes
        offset = grad_mean / sizes - slope * mean
        shape = (x.shape[0], x.shape[1], *([1] * (x.dim() - 2)))
        # dx = offset + slope * x for each row's group: one pass over x, in x's memory layout.
        grad = torch.addcmul(offset[groups].reshape(shape), slope[groups].reshape(shape), x)
        return grad, None, None


def _group_sizes(x: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    """How many values of each channel each group has: its rows times the positions a row."""
    positions = x[0, 0].numel() if len(x) else 0
    return torch.bincount(groups, minlength=count).to(x.dtype) * positions


def _memory_view(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x`` (N, C, ...) as a 3-D view that walks its memory in order, (N, C, L) or (N, L, C),
    and which axis of the view is the channel's (1 or 2); copied contiguous if neither fits."""
    rows, channels = x.shape[:2]
    if x.dim() > 2 and not x.is_contiguous():
        last = x.movedim(1, -1)  # channels last, of any rank
        if last.is_contiguous():
            return last.view(rows, -1, channels), 2
    return x.contiguous().view(rows, channels, -1), 1


def _centred_sums(
    view: torch.Tensor, position_axis: int, means: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over ``position_axis`` of the view's (N, C, L) or (N, L, C) values less their
    row's ``means`` (N, C), and of their squares: two (N, C). A few rows at a time through one
    buffer, since centring the whole input at once writes and reads a copy of it in memory."""
    rows = view.shape[0]
    step = max(1, CHUNK_ELEMENTS // max(1, view[0].numel()))
    buffer = view.new_empty((min(step, rows), *view.shape[1:]))
    residues, squares = view.new_empty(rows, means.shape[1]), view.new_empty(rows, means.shape[1])
    for start in range(0, rows, step):
        chunk = buffer[: min(step, rows - start)]
        end = start + len(chunk)
        torch.sub(view[start:end], means[start:end].unsqueeze(position_axis), out=chunk)
        torch.sum(chunk, position_axis, out=residues[start:end])
        torch.sum(chunk.square_(), position_axis, out=squares[start:end])
    return residues, squares
