"""The model's own batch-norm statistics as a differentiable term of the images drawn.

DeepInversion (Yin et al., CVPR 2020, "Dreaming to Distill: Data-free Knowledge Transfer via
DeepInversion"): each batch-norm layer ``l`` of a trained network stores the running mean and
variance, per channel, of its input over the training data. Images drawn from the network alone
look more like that data when the same statistics, taken over the batch being drawn, match the
stored ones::

    R_feature(x) = sum_l w_l * (||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2)

where ``mu_l`` and ``var_l`` are the per-channel mean and biased variance of layer ``l``'s input
over the batch and every position (N, H, W), as batch norm computes them in training. The term
is a function of the whole batch, so the batch goes through the model in one forward pass.

The statistics come from :mod:`identikit.models.batch_norm_taps`, which finds the layers and
reads their inputs in PyTorch modules, TorchScript and ONNX graphs.

Groups: rows of a batch may be split into groups (runs of one class, say), each group's
statistics matched on its own; the term is then the sum over groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError
from identikit.models.batch_norm_taps import LayerStatistics

FIRST_LAYER_WEIGHT = 10.0
"""The default weight of the first batch-norm layer (the others weigh 1): DeepInversion's
ImageNet code multiplies the first layer's term by its ``first_bn_multiplier``, 10 by default,
since the first layer sees the pixels themselves and its statistics are the colours'."""


def layer_weights(count: int, first: float = FIRST_LAYER_WEIGHT) -> tuple[float, ...]:
    """DeepInversion's weights for ``count`` layers: ``first`` for the first, 1 for the rest."""
    return (first,) + (1.0,) * (count - 1) if count else ()


@dataclass(frozen=True)
class StatisticsTerm:
    """R_feature of one batch: ``distances`` (groups, layers), each the layer's
    ||mean - running_mean||_2 + ||var - running_var||_2 for the group (summed over the layer's
    calls, where a layer runs more than once), and ``weights`` (layers,)."""

    distances: torch.Tensor
    weights: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The weighted sum over groups and layers: the scalar to minimise."""
        return (self.distances * self.weights).sum()

    @property
    def per_layer(self) -> torch.Tensor:
        """Unweighted distances per layer (layers,), summed over groups."""
        return self.distances.sum(0)

    @property
    def per_group(self) -> torch.Tensor:
        """Weighted terms per group (groups,)."""
        return (self.distances * self.weights).sum(1)

    def detach(self) -> StatisticsTerm:
        return StatisticsTerm(self.distances.detach(), self.weights)


def statistics_term(
    observed: Sequence[LayerStatistics], count: int, weights: Sequence[float] | None = None
) -> StatisticsTerm:
    """R_feature of the statistics ``observed`` in one pass through a model of ``count``
    batch-norm layers, with ``weights`` per layer (default :func:`layer_weights`). A layer that
    did not run adds 0; no layers: a total of 0 (and no gradient)."""
    chosen = tuple(layer_weights(count) if weights is None else weights)
    if len(chosen) != count:
        raise IdentikitError(f"{len(chosen)} batch-norm layer weights for {count} layers")
    if not observed:
        return StatisticsTerm(torch.zeros(1, count), torch.tensor(chosen))
    first = observed[0].mean
    columns: list[torch.Tensor] = [first.new_zeros(first.shape[0]) for _ in range(count)]
    for seen in observed:
        distance = torch.linalg.vector_norm(seen.mean - seen.running_mean, dim=1)
        distance = distance + torch.linalg.vector_norm(seen.var - seen.running_var, dim=1)
        columns[seen.layer] = columns[seen.layer] + distance
    weights_tensor = torch.tensor(chosen, dtype=first.dtype, device=first.device)
    return StatisticsTerm(torch.stack(columns, dim=1), weights_tensor)
