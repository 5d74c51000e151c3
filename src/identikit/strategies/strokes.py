"""Random search with pen strokes: perturbations shaped like the strokes digits are made of.

Each candidate adds (or erases) one straight stroke to the run's best image: a segment with a
random start, direction and length, drawn with a soft pen of width ``width`` (ink falls off
linearly with the distance from the segment). The candidate the model likes best is kept if it
improves on the base. A stroke prior for black-box search: where square updates paint blocks,
strokes can only draw what a pen could, in the spirit of stroke-based models of handwriting
(Lake, Salakhutdinov & Tenenbaum 2015, "Human-level concept learning through probabilistic
program induction"). On a colour image each stroke has a colour of its own, drawn from the run's
generator: its ink scales each channel by that colour's value there. A grey image's strokes
draw no colour, so they are what they always were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from identikit.strategies.base import Group, Strategy
from identikit.strategies.registry import check_settings, register, require

MAX_LENGTH = 10_000.0  # pixels
MARGIN = 2  # pixels


@register
@dataclass(frozen=True, kw_only=True)
class Strokes(Strategy):
    """Elitist random search over pen strokes.

    Args:
        candidates: strokes tried per iteration (default 10).
        min_length, max_length: stroke length in pixels (defaults 3, 10).
        width: pen half-width in pixels (default 1.2).
        erase: probability that a stroke erases instead of drawing (default 0.3).
    """

    name = "strokes"
    source = (
        "after Lake, Salakhutdinov & Tenenbaum (2015), "
        '"Human-level concept learning through probabilistic program induction"'
    )
    candidates: int = 10
    min_length: float = 3.0
    max_length: float = 10.0
    width: float = 1.2
    erase: float = 0.3

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "candidates", self.candidates >= 1, "at least 1")
        require(self, "min_length", self.min_length > 0, "a finite number > 0")
        # Beyond the image's diagonal (40 pixels for MNIST) a stroke only leaves it; far
        # beyond any image's, the distance arithmetic overflows.
        require(
            self,
            "max_length",
            self.min_length <= self.max_length <= MAX_LENGTH,
            f"between min_length and {MAX_LENGTH}",
        )
        require(self, "width", self.width > 0, "a finite number > 0")
        require(self, "erase", 0 <= self.erase <= 1, "in [0, 1]")

    @property
    def queries_per_step(self) -> int:
        return self.candidates

    def propose(self, group: Group) -> torch.Tensor:
        device = group.images.device
        height, width = group.images.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(float(height), device=device),
            torch.arange(float(width), device=device),
            indexing="ij",
        )
        grid = torch.stack([ys.flatten(), xs.flatten()], dim=1)  # (H x W, 2)
        channels = group.images.shape[1]
        strokes = torch.stack([self._strokes(g, grid, channels) for g in group.generators])
        # (G, K, C or 1, H, W): a grey pen draws the same stroke on every channel.
        strokes = strokes.view(len(group.generators), self.candidates, -1, height, width)
        return (group.images.unsqueeze(1) + strokes).clamp_(0.0, 1.0)

    def _strokes(
        self, generator: torch.Generator, grid: torch.Tensor, channels: int
    ) -> torch.Tensor:
        """``candidates`` strokes on the pixels of ``grid``: (K, H x W) for a grey image,
        (K, C, H x W) for a colour one."""
        k, device = self.candidates, grid.device
        u = torch.rand(k, 5, generator=generator, device=device)
        # Strokes start at least MARGIN pixels inside the image.
        start = MARGIN + u[:, :2] * (grid[-1] + 1 - 2 * MARGIN)
        angle = u[:, 2] * 2 * math.pi
        length = self.min_length + u[:, 3] * (self.max_length - self.min_length)
        end = start + length.unsqueeze(1) * torch.stack([angle.sin(), angle.cos()], dim=1)
        sign = torch.where(u[:, 4] < self.erase, -1.0, 1.0)
        # Distance from every pixel to every segment: project onto the segment, clamp, measure.
        direction = end - start  # (k, 2)
        offset = grid.unsqueeze(0) - start.unsqueeze(1)  # (k, H x W, 2)
        along = (offset * direction.unsqueeze(1)).sum(2) / direction.pow(2).sum(1, keepdim=True)
        nearest = start.unsqueeze(1) + along.clamp(0, 1).unsqueeze(2) * direction.unsqueeze(1)
        distance = (grid.unsqueeze(0) - nearest).norm(dim=2)
        ink = (1 - distance / self.width).clamp(min=0)
        strokes: torch.Tensor = ink * sign.unsqueeze(1)
        if channels == 1:
            return strokes
        # Drawn after the strokes' own numbers, so that those are a grey image's.
        colour = torch.rand(k, channels, generator=generator, device=device)
        return strokes.unsqueeze(1) * colour.unsqueeze(2)
