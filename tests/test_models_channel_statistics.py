"""The per-channel statistics of a batch-norm layer's input (``channel_moments`` of
identikit.models.channel_statistics, which batch_norm_taps records): float64's values to
float32's rounding on inputs far from zero, in any memory layout and rank, for each group of
rows; gradients that pass gradcheck; a backward that is one pass over the input."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from identikit.base.errors import IdentikitError
from identikit.models.channel_statistics import channel_moments

GROUPS = torch.tensor([2, 0, 1, 0, 2, 1])


def reference(x: torch.Tensor, groups: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each group's mean and biased variance in float64, from its rows taken apart."""
    x = x.double()
    dims = [0, *range(2, x.dim())]
    parts = [x] if groups is None else [x[groups == g] for g in range(int(groups.max()) + 1)]
    pairs = [torch.var_mean(part, dims, correction=0) for part in parts]
    return torch.stack([m for _, m in pairs]), torch.stack([v for v, _ in pairs])


def laid_out(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` (N, C, ...) in memory as ``layout`` says: contiguous, channels last (of any rank:
    the channel the fastest-moving index), or strided (a view that is neither)."""
    if layout == "channels_last":
        last = x.movedim(1, -1).contiguous().movedim(-1, 1)
        assert x.dim() == 2 or not last.is_contiguous()
        return last
    if layout == "strided":
        return torch.cat([x, x], dim=-1)[..., ::2]
    return x.contiguous()


SHAPES = [(6, 5), (6, 5, 9), (6, 5, 7, 3), (6, 3, 2, 5, 4)]
LAYOUTS = ["contiguous", "channels_last", "strided"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("grouped", [False, True])
def test_values_are_float64s_to_float32_rounding_far_from_zero(
    shape: tuple[int, ...], layout: str, grouped: bool
) -> None:
    generator = torch.Generator().manual_seed(len(shape))
    # Mean 100, spread 3: E[x^2] - E[x]^2 would lose about three of float32's seven digits.
    x = laid_out(torch.randn(shape, generator=generator) * 3 + 100, layout)
    groups = GROUPS if grouped else None
    mean, var = channel_moments(x, groups)
    want_mean, want_var = reference(x, groups)
    assert mean.dtype == var.dtype == torch.float32
    assert mean.shape == var.shape == want_mean.shape
    assert ((mean.double() - want_mean).abs() / want_mean.abs()).max() < 1e-6
    assert ((var.double() - want_var).abs() / want_var).max() < 1e-6


def test_a_spread_a_million_times_smaller_than_the_mean_keeps_its_digits() -> None:
    x = torch.randn(8, 4, 16, 16, dtype=torch.float64) * 1e-3 + 1000
    x = x.float().to(memory_format=torch.channels_last)
    _, var = channel_moments(x)
    _, want = reference(x, None)
    # E[x^2] - E[x]^2 in float32 gives noise here (1e6 / 1e-6 is far past 2^24).
    assert ((var.double() - want).abs() / want).max() < 1e-5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("grouped", [False, True])
def test_gradients_pass_gradcheck(shape: tuple[int, ...], layout: str, grouped: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(shape, generator=generator, dtype=torch.float64) + 2
    x = laid_out(base, layout).requires_grad_()
    groups = GROUPS if grouped else None
    assert torch.autograd.gradcheck(lambda t: channel_moments(t, groups), (x,))


def test_the_gradient_keeps_the_inputs_layout_and_agrees_with_var_means() -> None:
    x = (torch.randn(6, 8, 10, 10) * 3 + 100).to(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_mean, grad_var = torch.randn(1, 8), torch.randn(1, 8)
    mean, var = channel_moments(ours)
    torch.autograd.backward((mean, var), (grad_mean, grad_var))
    their_var, their_mean = torch.var_mean(theirs, [0, 2, 3], correction=0)
    torch.autograd.backward((their_mean, their_var), (grad_mean[0], grad_var[0]))
    assert ours.grad is not None and theirs.grad is not None
    assert ours.grad.is_contiguous(memory_format=torch.channels_last)
    scale = theirs.grad.abs().max()
    assert (ours.grad - theirs.grad).abs().max() / scale < 1e-5


def input_sized_operations(x: torch.Tensor, groups: torch.Tensor | None) -> list[str]:
    """The operators that the backward of the statistics of ``x`` runs on tensors of its size
    (each a pass over memory as large as the input)."""
    leaf = x.detach().requires_grad_()
    mean, var = channel_moments(leaf, groups)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as trace:
        torch.autograd.backward((mean, var), (torch.ones_like(mean), torch.ones_like(var)))
    size = list(x.shape)
    return [
        event.name
        for event in trace.events()
        if event.name.startswith("aten::")
        and not event.cpu_children
        and any(list(shape) == size for shape in event.input_shapes)
        and event.name not in {"aten::empty_strided", "aten::empty", "aten::as_strided"}
    ]


@pytest.mark.parametrize("grouped", [False, True])
def test_the_backward_is_one_pass_over_the_input(grouped: bool) -> None:
    x = torch.randn(6, 8, 12, 12).to(memory_format=torch.channels_last)
    assert input_sized_operations(x, GROUPS if grouped else None) == ["aten::addcmul"]


def test_groups_that_do_not_number_the_rows_are_refused_in_one_line() -> None:
    x = torch.randn(6, 3, 4, 4)
    for groups in (torch.tensor([0, 0, 2, 2, 0, 0]), torch.tensor([0, 1, -1, 0, 1, 0])):
        with pytest.raises(IdentikitError, match="every group used"):
            channel_moments(x, groups)
    with pytest.raises(IdentikitError, match="each of the 6 rows"):
        channel_moments(x, torch.tensor([0, 1, 0]))
