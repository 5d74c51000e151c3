"""Random search with localised square updates, after Square Attack.

Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a query-efficient black-box
adversarial attack via random search": each iteration changes one random square window of the
current image, with a side that shrinks as the search goes on, and keeps the change only if the
model's score improves. Adapted here from attacking a given image to drawing one from blank:
the window is painted lighter or darker by ``amplitude`` (sign drawn at random), clipped to
[0, 1]; the side follows the paper's piecewise schedule, starting at ``side`` pixels and
halving the window's area at fixed fractions of ``schedule_queries``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from identikit.data.datasets import MNIST_SHAPE
from identikit.strategies.base import Group, Strategy
from identikit.strategies.registry import check_settings, register, require

# Iterations (as fractions of the schedule) at which the paper halves the square's area.
_HALVINGS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
# The largest side a setting may ask for: the side of the images every model takes for now.
MAX_SIDE = min(MNIST_SHAPE.height, MNIST_SHAPE.width)


@register
@dataclass(frozen=True, kw_only=True)
class SquareSearch(Strategy):
    """Elitist random search over square patches.

    Args:
        candidates: squares tried per iteration (default 1, as in the paper).
        side: starting side of the square in pixels (default 14: half the image).
        amplitude: how much a square lightens or darkens its pixels (default 1.0).
        schedule_queries: the budget the shrinking schedule is laid out over (default 10,000).
    """

    name = "square"
    source = (
        "Andriushchenko, Croce, Flammarion & Hein (2020), "
        '"Square Attack: a query-efficient black-box adversarial attack via random search"'
    )
    candidates: int = 1
    side: int = 14
    amplitude: float = 1.0
    schedule_queries: int = 10_000

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "candidates", self.candidates >= 1, "at least 1")
        require(self, "side", 1 <= self.side <= MAX_SIDE, f"in 1..{MAX_SIDE}")
        require(self, "amplitude", 0 < self.amplitude <= 1, "in (0, 1]")
        require(self, "schedule_queries", self.schedule_queries >= 1, "at least 1")

    @property
    def queries_per_step(self) -> int:
        return self.candidates

    def side_at(self, iteration: int) -> int:
        """The square's side at an iteration: area halved at each milestone of the schedule."""
        progress = iteration * self.candidates / max(self.schedule_queries, 1)
        halvings = sum(progress > m for m in _HALVINGS)
        return max(1, round(self.side / math.sqrt(2) ** halvings))

    def propose(self, group: Group) -> torch.Tensor:
        k, device = self.candidates, group.images.device
        height, width = group.images.shape[-2:]
        out = group.images.unsqueeze(1).repeat(1, k, 1, 1, 1)
        for i, (generator, iteration) in enumerate(
            zip(group.generators, group.iterations.tolist(), strict=True)
        ):
            side = min(self.side_at(iteration), height, width)
            # Both coordinates of a corner in one draw, within the shorter side.
            room = min(height, width) + 1 - side
            corners = torch.randint(0, room, (k, 2), generator=generator, device=device)
            signs = torch.randint(0, 2, (k,), generator=generator, device=device) * 2 - 1
            for j, ((top, left), sign) in enumerate(
                zip(corners.tolist(), signs.tolist(), strict=True)
            ):
                window = out[i, j, :, top : top + side, left : left + side]
                window.add_(sign * self.amplitude).clamp_(0.0, 1.0)
        return out
