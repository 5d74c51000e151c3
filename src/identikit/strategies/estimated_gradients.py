"""Gradients estimated from a model's outputs alone, for models that give none (black box).

Natural evolution strategies with antithetic Gaussian samples (Wierstra et al. 2014, "Natural
Evolution Strategies", JMLR; used for black-box attacks by Ilyas et al. 2018, "Black-box
Adversarial Attacks with Limited Queries and Information"): for each image x, draw
``samples / 2`` directions u_i ~ N(0, I), score x + sigma u_i and x - sigma u_i, and take

    grad f(x) ~= 1 / (samples sigma) * sum_i (f(x + sigma u_i) - f(x - sigma u_i)) u_i,

since E[(f(x + sigma u) - f(x - sigma u)) u] ~= 2 sigma grad f(x) for small sigma. Each pair
cancels the terms of f even in u, so the estimate's variance is that of a central difference.

Directions may be drawn at a coarser resolution and upsampled bilinearly (``scale``): on a
224 x 224 image, 150,528 dimensions take tens of thousands of queries before a Gaussian
estimate points anywhere, while a model's gradient is mostly low frequency; Ilyas et al. 2019
("Prior Convictions", ICLR) estimate in such a tiled space for that reason. The estimate is
then that of the gradient projected on the smooth directions (U U^T grad f, U the upsampling),
which is what an ascent in that space needs.

Every image's directions come from its own generator alone, one direction per draw, so a run's
estimate depends on its own generator and image, not on which other runs share the group or
how the queries are cut into blocks (up to the model's own float32 rounding across batch sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier, Objective

# Bytes of perturbed images held at once, at most: 5,461 images of 3 x 32 x 32, 111 of
# 3 x 224 x 224. Scoring is cut into the classifier's chunks anyway; this bounds the pixels.
PROBE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Nes:
    """The settings of an NES estimate, checked once: ``samples`` queries per image for the
    estimate (an even number: antithetic pairs), ``sigma`` the perturbations' standard
    deviation in pixel units, ``scale`` the coarseness of the directions (drawn at 1/``scale``
    of the height and width, rounded up, and upsampled bilinearly; 1: pixel by pixel)."""

    samples: int
    sigma: float
    scale: int = 1

    def __post_init__(self) -> None:
        samples, sigma, scale = self.samples, self.sigma, self.scale
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2 or samples % 2:
            raise IdentikitError(
                "samples must be an even whole number of at least 2 (antithetic pairs), "
                f"got {samples!r}"
            )
        number = isinstance(sigma, (int, float)) and not isinstance(sigma, bool)
        if not number or not math.isfinite(sigma) or sigma <= 0:
            raise IdentikitError(f"sigma must be a finite number above 0, got {sigma!r}")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise IdentikitError(f"scale must be a whole number of at least 1, got {scale!r}")

    def value_and_grad(
        self,
        classifier: Classifier,
        images: torch.Tensor,
        objective: Objective,
        generators: Sequence[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective values (N,) at ``images`` and NES estimates (N, C, H, W) of
        their gradients, from :meth:`Classifier.log_probabilities` alone (float32 scores, so
        a model without gradients, quantized or an ONNX graph the interpreter does not run,
        works).

        ``objective`` is as for :meth:`Classifier.value_and_grad`: ``objective(x,
        log_probabilities, rows)`` -> (len(x),), where row k of ``x`` is ``images[rows][k]``
        or a perturbation of it. ``generators``: one per image (its run's generator at this
        iteration), which alone gives that image's directions. Perturbed images are not
        clipped to [0, 1]: clipping would bias the estimate at the box's faces. Each image
        costs ``samples + 1`` queries (the last: the objective at the image itself).
        """
        _check(images, generators)
        n, channels, height, width = images.shape
        coarse = (channels, math.ceil(height / self.scale), math.ceil(width / self.scale))
        pairs = self.samples // 2
        per_block = max(1, PROBE_BYTES // (4 * images[0].numel()))  # float32 pixels
        # Directions per block fixed by the image size alone (not by N), so that each image's
        # sum over directions is added up in the same blocks whatever group it is in.
        directions = max(1, min(pairs, per_block // 2))
        rows_per_block = max(1, per_block // (2 * directions))
        with torch.no_grad():
            values = torch.empty(n, device=classifier.device)
            grads = torch.zeros(images.shape, device=classifier.device)
            for start in range(0, n, rows_per_block):
                rows = slice(start, min(start + rows_per_block, n))
                x = images[rows].to(classifier.device, torch.float32)
                values[rows] = objective(x, classifier.log_probabilities(x), rows)
                for first in range(0, pairs, directions):
                    count = min(directions, pairs - first)
                    u = _directions(generators[rows], count, coarse, (height, width))
                    grads[rows] += _weighted_sum(classifier, objective, x, u, self.sigma, rows)
            grads /= self.samples * self.sigma
        return values, grads


def estimated_value_and_grad(
    classifier: Classifier,
    images: torch.Tensor,
    objective: Objective,
    *,
    samples: int,
    sigma: float,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`Nes.value_and_grad` with directions drawn pixel by pixel: the objective's values
    (N,) and NES estimates (N, C, H, W) of its gradients, ``samples + 1`` queries an image.
    For coarse directions use ``Nes(samples, sigma, scale).value_and_grad(...)``."""
    return Nes(samples, sigma).value_and_grad(classifier, images, objective, generators)


def _check(images: torch.Tensor, generators: Sequence[torch.Generator]) -> None:
    """Refuse images and generators the estimate cannot use, in one line each."""
    if images.dim() != 4:
        raise IdentikitError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    if len(generators) != images.shape[0]:
        raise IdentikitError(
            f"one generator per image is needed: {len(generators)} for {images.shape[0]} images"
        )


def _directions(
    generators: Sequence[torch.Generator],
    count: int,
    coarse: tuple[int, int, int],
    size: tuple[int, int],
) -> torch.Tensor:
    """``count`` directions for each image, (count, images, C, H, W): drawn one at a time from
    the image's generator (so its stream does not depend on the block sizes), at the coarse
    shape, then upsampled to ``size`` where it is smaller."""
    device = generators[0].device if generators else torch.device("cpu")
    u = torch.empty((count, len(generators), *coarse), device=device)
    for column, generator in enumerate(generators):
        for k in range(count):
            torch.randn(coarse, generator=generator, device=device, out=u[k, column])
    if coarse[1:] == size:
        return u
    flat = u.view(count * len(generators), *coarse)
    smooth = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return smooth.view(count, len(generators), coarse[0], *size)


def _weighted_sum(
    classifier: Classifier,
    objective: Objective,
    x: torch.Tensor,
    u: torch.Tensor,
    sigma: float,
    rows: slice,
) -> torch.Tensor:
    """sum_i (f(x + sigma u_i) - f(x - sigma u_i)) u_i over the block's directions, per image
    of ``x``; all the block's perturbed images scored in one call (the classifier chunks it)."""
    u = u.to(x.device)
    count, m = u.shape[0], x.shape[0]
    step = sigma * u
    probes = torch.cat([x + step, x - step]).view(2 * count * m, *x.shape[1:])
    log_probabilities = classifier.log_probabilities(probes).view(2 * count, m, -1)
    probes = probes.view(2 * count, m, *x.shape[1:])
    # The objective sees one direction's perturbations of the rows at a time, so that its rows
    # line up with theirs (its targets, its priors) as in Classifier.value_and_grad.
    f = torch.stack(
        [objective(probes[k], log_probabilities[k], rows) for k in range(2 * count)]
    ).to(u.dtype)
    difference = f[:count] - f[count:]
    return (difference.view(count, m, 1, 1, 1) * u).sum(dim=0)
