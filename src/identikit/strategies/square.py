"""Random search with localised square updates, after Square Attack.

Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a query-efficient black-box
adversarial attack via random search": each iteration changes one random square window of the
current image, with a side that shrinks as the search goes on, and keeps the change only if the
model's score improves. Adapted here from attacking a given image to drawing one from blank:
each channel of the window is painted lighter or darker by ``amplitude`` with a sign of its own
drawn at random, as the paper's colour updates move every channel of a window by +/- epsilon
independently, clipped to [0, 1]; the side follows the paper's piecewise schedule, starting at
``side`` pixels (at most the image's shorter side) and halving the window's area at fixed
fractions of ``schedule_queries``. Corners range over the whole height and width.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from identikit.base.shapes import ImageShape
from identikit.strategies.base import Group, Strategy
from identikit.strategies.registry import check_settings, register, require
from identikit.strategies.shape_defaults import square_amplitude

# Iterations (as fractions of the schedule) at which the paper halves the square's area.
_HALVINGS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)


@register
@dataclass(frozen=True, kw_only=True)
class SquareSearch(Strategy):
    """Elitist random search over square patches.

    Args:
        candidates: squares tried per iteration (default 1, as in the paper).
        side: starting side of the square in pixels; 0 (the default) is half the image's
            shorter side, 14 on MNIST, set by :meth:`for_shape` before a sweep records it. A
            side longer than the image's shorter side is cut to it.
        amplitude: how much a square lightens or darkens its pixels; 0 (the default) is
            from the image's shape: 1.0 (the paper's whole range) on images of at least 16
            pixels a side, MNIST among them, 0.5 on smaller ones (see
            :mod:`identikit.strategies.shape_defaults`).
        schedule_queries: the budget the shrinking schedule is laid out over (default 10,000).
    """

    name = "square"
    source = (
        "Andriushchenko, Croce, Flammarion & Hein (2020), "
        '"Square Attack: a query-efficient black-box adversarial attack via random search"'
    )
    candidates: int = 1
    side: int = 0
    amplitude: float = 0.0
    schedule_queries: int = 10_000

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "candidates", self.candidates >= 1, "at least 1")
        require(self, "side", self.side >= 0, "0 (half the image's shorter side) or a side >= 1")
        require(
            self, "amplitude", 0 <= self.amplitude <= 1, "0 (from the image's shape) or in (0, 1]"
        )
        require(self, "schedule_queries", self.schedule_queries >= 1, "at least 1")

    @property
    def queries_per_step(self) -> int:
        return self.candidates

    def for_shape(self, shape: ImageShape) -> SquareSearch:
        # The paper sizes the first square by a share of the image's pixels; half the shorter
        # side keeps that share on images of any size (a quarter of a square image's area).
        # Its amplitude, where not given, follows the image's size (see shape_defaults).
        self.check_shape(shape)
        return dataclasses.replace(
            self,
            side=self.side or max(1, min(shape.height, shape.width) // 2),
            amplitude=self.amplitude or square_amplitude(shape),
        )

    def side_at(self, iteration: int, shorter: int = 0) -> int:
        """The square's side at an iteration: area halved at each milestone of the schedule.
        ``shorter`` is the image's shorter side, which a side of 0 is half of."""
        progress = iteration * self.candidates / max(self.schedule_queries, 1)
        halvings = sum(progress > m for m in _HALVINGS)
        start = self.side or max(1, shorter // 2)
        return max(1, round(start / math.sqrt(2) ** halvings))

    def propose(self, group: Group) -> torch.Tensor:
        if not self.amplitude:  # not made for a shape: for the group's images
            return self.for_shape(ImageShape(*group.images.shape[1:])).propose(group)
        k = self.candidates
        height, width = group.images.shape[-2:]
        out = group.images.unsqueeze(1).repeat(1, k, 1, 1, 1)
        for i, (generator, iteration) in enumerate(
            zip(group.generators, group.iterations.tolist(), strict=True)
        ):
            side = min(self.side_at(iteration, min(height, width)), height, width)
            corners = _corners(generator, k, height + 1 - side, width + 1 - side)
            signs = self._signs(generator, k, out.shape[2])
            for j, (top, left) in enumerate(corners.tolist()):
                window = out[i, j, :, top : top + side, left : left + side]
                window.add_(signs[j]).clamp_(0.0, 1.0)
        return out

    def _signs(self, generator: torch.Generator, k: int, channels: int) -> torch.Tensor:
        """Each candidate's offset per channel, (k, C, 1, 1): +/- amplitude, signs drawn apart.

        Drawn as (k, C) numbers, the k signs of a grey image are the very draws of the (k,)
        signs it always had.
        """
        device = generator.device
        signs = torch.randint(0, 2, (k, channels), generator=generator, device=device) * 2 - 1
        return (signs * self.amplitude).to(torch.float32).view(k, channels, 1, 1)


def _corners(generator: torch.Generator, k: int, rows: int, columns: int) -> torch.Tensor:
    """``k`` top-left corners (k, 2): the top in [0, rows), the left in [0, columns)."""
    device = generator.device
    if rows == columns:
        # Both coordinates in one draw, as square images always had them.
        return torch.randint(0, rows, (k, 2), generator=generator, device=device)
    top = torch.randint(0, rows, (k,), generator=generator, device=device)
    left = torch.randint(0, columns, (k,), generator=generator, device=device)
    return torch.stack([top, left], dim=1)
