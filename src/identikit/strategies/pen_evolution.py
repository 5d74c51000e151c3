"""Data-free reconstruction without gradients: evolution strategies on pen strokes.

The black-box twin of :mod:`identikit.strategies.reconstruction`: the same canvas of a few pen
strokes, the same random views and ink penalty, but the gradient of the mean over views is
estimated from the model's outputs alone, with antithetic Gaussian samples (natural evolution
strategies: Wierstra et al. 2014, "Natural Evolution Strategies"; Salimans et al. 2017,
"Evolution Strategies as a Scalable Alternative to Reinforcement Learning"; as a black-box
attack, Ilyas et al. 2018, "Black-box Adversarial Attacks with Limited Queries and
Information"). A stroke canvas has a few dozen numbers, not hundreds of pixels, which is what
makes estimating its gradient from a few dozen queries a step work. Every candidate of a step
is seen under the same views (common random numbers), so the difference between two
candidates is the strokes', not the views'.

Each step spends ``2 samples x views`` queries on the candidates and one on the image itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.strategies.base import Group
from identikit.strategies.reconstruction import Reconstruction
from identikit.strategies.registry import register, require

# Images rendered at once without gradients: their distance arrays stay near 50 MB each.
RENDER_CHUNK = 256


@register
@dataclass(frozen=True, kw_only=True)
class PenEvolution(Reconstruction):
    """Antithetic evolution strategies over random views of a pen-stroke canvas (black box).

    Args (besides the reconstruct strategy's canvas, strokes, pen, shift, scale, degrees,
    noise, objective, lr, ink_weight, tv_weight; ``canvas`` must be ``strokes``):
        samples: antithetic pairs of perturbations per step (default 10).
        sigma: their standard deviation, in the strokes' coordinates (default 0.05).
        views: random views every candidate is seen under (default 2).
    """

    name = "pen-evolution"
    source = "natural evolution strategies (Wierstra et al. 2014; Ilyas et al. 2018) on pen strokes"
    white_box = False
    samples: int = 10
    sigma: float = 0.05
    views: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "canvas", self.canvas == "strokes", "strokes (pen-evolution draws strokes)")
        require(self, "samples", 1 <= self.samples <= 256, "1 to 256")
        require(self, "sigma", self.sigma > 0, "a finite number > 0")

    @property
    def queries_per_step(self) -> int:
        return 2 * self.samples * self.views + 1

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        shape = ImageShape.of(group.images.shape[1:])
        memory, generators = group.memory, group.generators
        p = memory["p"]
        runs, size = p.shape
        device = p.device
        noise = torch.stack(
            [torch.randn(self.samples, size, generator=g, device=device) for g in generators]
        )
        # Candidates (runs, 2 samples, size): p + sigma e, then p - sigma e.
        candidates = p.unsqueeze(1) + self.sigma * torch.cat([noise, -noise], dim=1)
        pairs = 2 * self.samples
        images = self._render(candidates.flatten(0, 1), shape)  # (runs * pairs, C, H, W)
        strength = self._strength(memory)
        # Every candidate of a run is seen under the run's views: (runs * pairs * views, ...).
        seen = self._views(images, generators, strength, copies=pairs)
        targets = group.targets.repeat_interleave(pairs * self.views).view(-1, 1)
        logp = classifier.log_probabilities(seen)
        value = logp.gather(1, targets).squeeze(1)
        if self.objective == "margin":
            value = value - logp.scatter(1, targets, float("-inf")).max(dim=1).values
        penalty = self._penalty(images) + self._stroke_penalty(candidates.flatten(0, 1))
        penalty = penalty * strength.repeat_interleave(pairs)
        fitness = value.view(runs, pairs, self.views).mean(dim=2) - penalty.view(runs, pairs)
        # Antithetic differences, normalised per run so that the step size does not depend on
        # the scale of the objective (fitness shaping; Wierstra et al. 2014).
        difference = fitness[:, : self.samples] - fitness[:, self.samples :]
        difference = difference / (difference.std(dim=1, keepdim=True) + 1e-12)
        gradient = (difference.unsqueeze(2) * noise).mean(dim=1) / self.sigma
        memory["p"] = self._adam(memory, p, gradient)
        image = self._render(memory["p"], shape).clamp(0.0, 1.0)
        scores = classifier.log_probabilities(image).gather(1, group.targets.view(-1, 1))
        gain = fitness.mean(dim=1)
        group.progressed = gain > memory["best"]
        memory["best"] = torch.maximum(memory["best"], gain)
        return image, scores.squeeze(1)

    def _render(self, parameters: torch.Tensor, shape: ImageShape) -> torch.Tensor:
        """The stroke images of ``parameters`` (N, size), a chunk at a time."""
        return torch.cat(
            [
                self.draw(parameters[start : start + RENDER_CHUNK], shape)
                for start in range(0, parameters.shape[0], RENDER_CHUNK)
            ]
        )
