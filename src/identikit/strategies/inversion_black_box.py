"""The colour recipe without gradients: :mod:`identikit.strategies.inversion` on the same
parameterisation, views and image priors, its gradients estimated from the model's scores.

For models that give no gradients (a quantized graph, an ONNX graph identikit's interpreter does
not run), each step's gradient at the views is a natural-evolution-strategies estimate with
antithetic samples (Wierstra et al. 2014; Ilyas et al. 2018, "Black-box Adversarial Attacks
with Limited Queries and Information"; :mod:`identikit.strategies.estimated_gradients`). The
batch-norm statistics are inside the model, out of a black box's reach, so there is no
statistics term, and the runs, no longer sharing one, are independent: grouped by memory and
split among the engine's lanes like any black-box search's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier, Objective
from identikit.strategies.base import Group
from identikit.strategies.estimated_gradients import Nes
from identikit.strategies.inversion import Inversion, Normalisation
from identikit.strategies.registry import register, require

# Directions are drawn on a grid this many times coarser than large images (see ``scale``):
# 224 x 224 ImageNet images get 32 x 32 directions, 32 x 32 CIFAR ones pixel by pixel.
COARSE_GRID = 32


@register
@dataclass(frozen=True, kw_only=True)
class EstimatedInversion(Inversion):
    """The colour recipe from the model's scores alone: its gradients estimated by NES with
    antithetic samples, without the statistics term.

    Args (besides :class:`~identikit.strategies.inversion.Inversion`'s, ``bn_weight`` 0 and
    ``batch`` unused):
        samples: the estimate's samples per step, in antithetic pairs (default 40).
        sigma: their standard deviation, in pixels (default 0.01).
        scale: directions drawn on a grid ``scale`` times coarser, upsampled bilinearly
            (default 0: from the image's shape, about COARSE_GRID points a side).
    """

    name = "invert-black-box"
    source = (
        "DeepInversion's image priors (Yin et al. 2020) with NES gradient estimates "
        "(Wierstra et al. 2014; Ilyas et al. 2018)"
    )
    white_box = False
    bn_weight: float = 0.0
    # Its estimates score the views through the model's scorers, which take its own size.
    coarse_input: str = "full"
    samples: int = 40
    sigma: float = 0.01
    scale: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bn_weight:
            raise IdentikitError(
                f"{self.name}: --option bn_weight must be 0: a black box's batch-norm "
                "statistics are out of reach"
            )
        require(
            self,
            "coarse_input",
            self.coarse_input == "full",
            "full (a black box's views are scored at the model's size)",
        )
        require(
            self,
            "samples",
            2 <= self.samples <= 10_000 and self.samples % 2 == 0,
            "an even number from 2 to 10,000",
        )
        require(self, "sigma", self.sigma > 0, "a finite number > 0")
        require(self, "scale", self.scale >= 0, "a whole number >= 0 (0: from the shape)")

    @property
    def queries_per_step(self) -> int:
        return self.samples + 2  # the estimate's samples, the views, the image itself

    def for_shape(self, shape: ImageShape) -> EstimatedInversion:
        chosen = super().for_shape(shape)
        assert isinstance(chosen, EstimatedInversion)
        if chosen.scale:
            return chosen
        side = max(1, min(shape.height, shape.width) // COARSE_GRID)
        return dataclasses.replace(chosen, scale=side)

    def batch_runs(self, runs: int) -> int | None:
        del runs  # no term over the batch: independent runs
        return None

    def grouping(self, runs: int) -> str | None:
        del runs
        return None

    def _view_gradients(
        self, classifier: Classifier, views: torch.Tensor, group: Group, box: Normalisation
    ) -> torch.Tensor:
        return self._estimate(classifier, views, self.objective(group.targets, box), group)

    def _polish_gradients(
        self, classifier: Classifier, images: torch.Tensor, group: Group, box: Normalisation
    ) -> torch.Tensor:
        objective = self.polish_objective(group.targets, box)
        return self._estimate(classifier, images, objective, group)

    def _estimate(
        self, classifier: Classifier, images: torch.Tensor, objective: Objective, group: Group
    ) -> torch.Tensor:
        """NES's estimate of ``objective``'s gradients at ``images`` (each run's directions
        from its own generator)."""
        estimate = Nes(self.samples, self.sigma, max(1, self.scale))
        _, grads = estimate.value_and_grad(classifier, images, objective, group.generators)
        return grads
