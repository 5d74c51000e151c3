"""Images drawn with a pen: a few thick cubic Bezier strokes, rendered differentiably.

A stroke is a cubic Bezier curve (Bezier 1968; de Casteljau's polynomial form) of four control
points, drawn by a round pen of fixed radius, and a pressure: how much ink it leaves. A pixel's
ink is its nearest stroke's, a logistic function of its distance to the curve (sampled as
a polyline of straight segments), so that the image is a smooth function of the control points
and gradients move the strokes themselves; where strokes cross, the darker ink wins. Every such
image can be drawn by hand, which is the point: a class model read through this parameterisation
can only answer with pen drawings. Differentiable vector rendering after Li et al. (2020),
"Differentiable Vector Graphics Rasterization for Editing and Learning" (diffvg), and the
soft-distance strokes of Ganin et al. (2018), "Synthesizing Programs for Images using Reinforced
Adversarial Learning" (SPIRAL), simplified to one brush.

Coordinates are ``affine_grid``'s: the image spans [-1, 1] both ways, pixel centres at
(2 i + 1) / size - 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Control points, pressure: the parameters of one stroke.
POINTS = 4
PER_STROKE = 2 * POINTS + 1


@dataclass(frozen=True)
class PenStrokes:
    """``strokes`` strokes of a pen of radius ``radius`` (a share of the image's height), each
    a polyline of ``samples`` points along its curve, edges ``softness`` pixels wide."""

    strokes: int = 4
    radius: float = 0.08
    samples: int = 16
    softness: float = 0.5

    @property
    def size(self) -> int:
        """Parameters of one image."""
        return self.strokes * PER_STROKE

    def start(
        self, generators: Sequence[torch.Generator], spread: float, device: torch.device
    ) -> torch.Tensor:
        """Parameters (N, size) of random strokes, one image per generator: control points
        uniform within ``spread`` of the centre, every pressure at 2 (ink 0.88)."""
        rows = []
        for generator in generators:
            points = torch.rand(self.strokes, 2 * POINTS, generator=generator, device=device)
            pressure = torch.full((self.strokes, 1), 2.0, device=device)
            rows.append(torch.cat([(points * 2 - 1) * spread, pressure], dim=1).flatten())
        return torch.stack(rows)

    def render(self, parameters: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] of parameters (N, size); every channel the same ink."""
        channels, height, width = shape
        n = parameters.shape[0]
        strokes = parameters.view(n, self.strokes, PER_STROKE)
        control = strokes[..., : 2 * POINTS].reshape(n, self.strokes, POINTS, 2)
        ink = torch.sigmoid(strokes[..., 2 * POINTS])  # (N, S)
        curve = bezier(control, self.samples)  # (N, S, T, 2), (x, y)
        start, end = curve[:, :, :-1], curve[:, :, 1:]  # segments (N, S, T - 1, 2)
        pixels = pixel_centres(height, width, parameters.device, parameters.dtype)  # (P, 2)
        # Distance from each pixel to each segment: project onto the segment, clamped to it.
        along = (end - start).unsqueeze(-2)  # (N, S, T - 1, 1, 2)
        offset = pixels.view(1, 1, 1, -1, 2) - start.unsqueeze(-2)  # (N, S, T - 1, P, 2)
        length = along.pow(2).sum(-1).clamp_min(1e-12)
        share = ((offset * along).sum(-1) / length).clamp(0.0, 1.0)
        gap = (offset - share.unsqueeze(-1) * along).pow(2).sum(-1)  # squared, (N, S, T - 1, P)
        # The square root's gradient is infinite at 0: a pixel exactly on the curve.
        distance = gap.min(dim=2).values.clamp_min(1e-12).sqrt()  # to each stroke, (N, S, P)
        # One pixel is 2 / height in these coordinates.
        pixel = 2.0 / height
        edge = torch.sigmoid((self.radius * 2 - distance) / (self.softness * pixel))
        image = (edge * ink.unsqueeze(-1)).max(dim=1).values  # (N, P)
        return image.view(n, 1, height, width).expand(n, channels, height, width)


def bezier(control: torch.Tensor, samples: int) -> torch.Tensor:
    """Points (..., samples, 2) along the cubic Bezier curves of ``control`` (..., 4, 2), at
    evenly spaced parameter values from 0 to 1."""
    t = torch.linspace(0.0, 1.0, samples, device=control.device, dtype=control.dtype)
    weights = torch.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3], dim=1)
    return torch.einsum("tk,...kd->...td", weights, control)


def pixel_centres(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The (x, y) centres of the pixels, (H * W, 2), row by row, in [-1, 1] coordinates."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
