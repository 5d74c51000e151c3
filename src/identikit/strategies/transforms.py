"""Transformation robustness: the model sees each step's image randomly shifted, scaled and turned.

After Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill, section
"Transformation robustness": an image that stays the target's only when the model sees it exactly
as it is, pixel for pixel, is adversarial noise; asking that it stay so under small random
jitter, scaling and rotation each step removes much of that noise. Each run draws its own
transform from its own generator, so a run depends only on its seed; the transform is one affine
map resampled bilinearly (Jaderberg et al. 2015, "Spatial Transformer Networks":
``affine_grid`` and ``grid_sample``), and the gradient is chained back through it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from identikit.strategies.priors import View

# Largest shift, as a share of the image's height or width (about 2 pixels of 28, 14 of 224).
SHIFT = 1 / 16
# Largest change of size: the image is scaled by a factor in [1 - SCALE, 1 + SCALE].
SCALE = 0.1
# Largest rotation, in degrees, either way.
DEGREES = 10.0


@dataclass(frozen=True)
class RandomAffine(View):
    """Each image shifted by up to ``shift`` of its size, scaled by up to ``scale`` and turned by
    up to ``degrees``, all drawn uniformly from its run's generator; outside the image is black."""

    shift: float = SHIFT
    scale: float = SCALE
    degrees: float = DEGREES
    # Chain the gradient back through the transform (see GradientAscent.step).
    chained: ClassVar[bool] = True

    def __call__(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        draws = torch.stack([torch.rand(4, generator=g, device=images.device) for g in generators])
        theta = self.matrices(draws * 2 - 1)
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )

    def matrices(self, draws: torch.Tensor) -> torch.Tensor:
        """The affine maps (N, 2, 3), in ``affine_grid``'s normalised coordinates, of draws
        (N, 4) in [-1, 1): shift down, shift right, scale, angle."""
        # Normalised coordinates run over [-1, 1], so a shift of a share s of the side is 2 s.
        shift_y, shift_x = 2 * self.shift * draws[:, 0], 2 * self.shift * draws[:, 1]
        size = 1 + self.scale * draws[:, 2]
        angle = draws[:, 3] * math.radians(self.degrees)
        # theta maps where the output samples to where the input is read: reading from a grid
        # shrunk by 1 / size shows the image enlarged by size.
        cos, sin = angle.cos() / size, angle.sin() / size
        return torch.stack(
            [
                torch.stack([cos, -sin, shift_x], dim=1),
                torch.stack([sin, cos, shift_y], dim=1),
            ],
            dim=1,
        )
