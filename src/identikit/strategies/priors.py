"""Image priors: what keeps an identikit looking like an image rather than adversarial noise.

Penalties (``tv``, ``l2``, ``manifold``) are subtracted from a white-box objective; transforms
(``blur``, ``jitter``) act on the image itself. Feature-visualisation work found each of them
to move optimised images towards recognisable ones: total variation (Mahendran & Vedaldi
2015), L2 decay, Gaussian blur and random jitter (Yosinski et al. 2015, "Understanding Neural
Networks Through Deep Visualization"; Mordvintsev et al. 2015, "Inceptionism"). ``manifold``
penalises the distance from the principal subspace of real training digits (a linear model of
the data manifold; Turk & Pentland 1991 used the same "distance from face space" to tell faces
from non-faces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from identikit.base.errors import IdentikitError
from identikit.data.datasets import load_dataset

PRIORS = ("tv", "l2", "blur", "jitter", "manifold")


def parse_priors(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tv,blur"`` -> ("blur", "tv"); a clear error for an unknown name."""
    if not text:
        return ()
    names = text.split(",") if isinstance(text, str) else list(text)
    chosen = sorted({n.strip() for n in names if n.strip()})
    unknown = [n for n in chosen if n not in PRIORS]
    if unknown:
        raise IdentikitError(f"unknown prior {unknown[0]!r}; known: {', '.join(PRIORS)}")
    return tuple(chosen)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: the summed absolute differences of neighbours."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    return dx + dy


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm per image (ink spent)."""
    return x.flatten(1).pow(2).sum(1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (N, 1, 28, 28) with a 5x5 Gaussian kernel of standard deviation ``sigma``."""
    if not (math.isfinite(sigma) and sigma > 0):  # 0 divides by zero; nan blurs to nan
        raise IdentikitError(f"the blur's sigma must be a finite number > 0, got {sigma}")
    offsets = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    kernel_1d = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).view(1, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel)


def jitter(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image by its own (dy, dx) in ``shifts`` (N, 2), filling with black."""
    padded = F.pad(x, (2, 2, 2, 2))
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(shifts.tolist()):  # a loop over runs, not over candidates
        out[i] = padded[i, :, 2 + dy : 30 + dy, 2 + dx : 30 + dx]
    return out


@lru_cache(maxsize=4)
def digit_subspace(
    dataset: str = "mnist", components: int = 40
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (784,) and top principal directions (784, components) of the training images."""
    # vectors[:, -0:] would be every direction: a subspace of 0 components is the whole space.
    if not 1 <= components <= 784:
        raise IdentikitError(f"the digit subspace takes 1..784 components, got {components}")

    images, _ = load_dataset(dataset, "train")
    x = torch.from_numpy(images.reshape(len(images), -1)).double().div_(255.0)
    mean = x.mean(0)
    centred = x - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    return mean.float(), vectors[:, -components:].float()


def manifold_distance(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Squared distance per image from the affine subspace mean + span(basis)."""
    centred = x.flatten(1) - mean.to(x.device)
    basis = basis.to(x.device)
    residual = centred - (centred @ basis) @ basis.T
    return residual.pow(2).sum(1)
