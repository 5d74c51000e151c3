"""A (1+lambda) evolution strategy over pixels with 1/5th-success step-size adaptation.

Each iteration draws ``candidates`` offspring of the run's best image, each the parent plus
Gaussian noise of scale sigma on a random subset of pixels (``density``), clipped to [0, 1]; the
best offspring replaces the parent only if better (the "plus" selection). Sigma adapts per run by
the 1/5th success rule (Rechenberg 1973; in the per-generation form of Kern et al. 2004, "Learning
probability distributions in continuous evolutionary algorithms"): multiplied by exp(0.8) after a
successful generation and by exp(-0.2) after a failed one, so it stays put when about one
generation in five succeeds. Nguyen, Yosinski & Clune (2015), "Deep Neural Networks are Easily
Fooled", evolved MNIST images that networks label with over 99.99% confidence this way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.strategies.base import Group, SearchState, Strategy
from identikit.strategies.registry import check_settings, register, require
from identikit.strategies.shape_defaults import mutation_density

_UP, _DOWN = math.exp(0.8), math.exp(-0.2)


@register
@dataclass(frozen=True, kw_only=True)
class Evolution(Strategy):
    """(1+lambda)-ES with per-run step size.

    Args:
        candidates: offspring per generation, lambda (default 10).
        sigma: initial mutation scale (default 0.5).
        density: share of values each mutation touches; 0 (the default) is from the image's
            shape: 0.05 on grey images of at least 28 x 28 (MNIST's), else about six values
            (0.1 at 8 x 8, 0.002 at 3 x 32 x 32; see :mod:`identikit.strategies.shape_defaults`).
        min_sigma, max_sigma: bounds on the adapted scale (defaults 0.01, 2.0).
    """

    name = "evolution"
    source = (
        "Rechenberg (1973), 1/5th success rule; Nguyen, Yosinski & Clune (2015), "
        '"Deep Neural Networks are Easily Fooled"'
    )
    candidates: int = 10
    sigma: float = 0.5
    density: float = 0.0
    min_sigma: float = 0.01
    max_sigma: float = 2.0

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "candidates", self.candidates >= 1, "at least 1")
        require(self, "sigma", self.sigma > 0, "a finite number > 0")
        require(self, "density", 0 <= self.density <= 1, "0 (from the image's shape) or in (0, 1]")
        require(self, "min_sigma", self.min_sigma > 0, "a finite number > 0")
        require(self, "max_sigma", self.max_sigma >= self.min_sigma, "at least min_sigma")

    @property
    def queries_per_step(self) -> int:
        return self.candidates

    def init_memory(self, state: SearchState) -> dict[str, torch.Tensor]:
        return {"sigma": torch.full_like(state.scores, self.sigma)}

    def for_shape(self, shape: ImageShape) -> Evolution:
        # A density left at 0 follows the image's size and channels (see shape_defaults).
        self.check_shape(shape)
        return dataclasses.replace(self, density=self.density or mutation_density(shape))

    def propose(self, group: Group) -> torch.Tensor:
        if not self.density:  # not made for a shape: for the group's images
            return self.for_shape(ImageShape(*group.images.shape[1:])).propose(group)
        shape = (self.candidates, *group.images.shape[1:])
        noise = []
        for generator, sigma in zip(group.generators, group.memory["sigma"].tolist(), strict=True):
            device = group.images.device
            mask = torch.rand(shape, generator=generator, device=device) < self.density
            noise.append(torch.randn(shape, generator=generator, device=device) * mask * sigma)
        return (group.images.unsqueeze(1) + torch.stack(noise)).clamp_(0.0, 1.0)

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        best, scores = super().step(classifier, group)
        success = scores > group.scores
        factor = torch.where(success, _UP, _DOWN)
        sigma = group.memory["sigma"] * factor
        group.memory["sigma"] = sigma.clamp(self.min_sigma, self.max_sigma)
        return best, scores
