"""Data-free reconstruction: what a class looks like to the model, asked with the model alone.

Gradient ascent, as in :mod:`identikit.strategies.gradient`, with the robustness that makes the
answer an image rather than adversarial noise, and nothing learnt from data:

- **Expectation over transformation** (Athalye et al. 2018, "Synthesizing Robust Adversarial
  Examples"; transformation robustness in Olah, Mordvintsev & Schubert 2017, "Feature
  Visualization", Distill): each step the objective is the mean over ``views`` random affine
  views of the image (shift, scale, rotation; :class:`~identikit.strategies.transforms.
  RandomAffine`) and, with ``noise``, Gaussian pixel noise on each view (robustness to pixel
  noise, as in randomized smoothing: Cohen, Rosenfeld & Kolter 2019).
- **A canvas that can only draw plausible things**: ``strokes`` pen strokes
  (:mod:`identikit.strategies.pen_strokes`), or ``pixels`` through a sigmoid (every value in
  (0, 1) without clipping, so that the gradient never stops at the box's walls).
- **Penalties**: the mean ink (a digit is a few strokes on a dark page), each stroke's ink (so
  that strokes the class does not need fade away), the distance of the ink's centre of mass from
  the image's centre (a framing convention, stated as an assumption) and total variation
  (Mahendran & Vedaldi 2015, "Understanding Deep Image Representations by Inverting Them").
- **Objective**: the target's log-probability, or its logit margin over the strongest other
  class (Carlini & Wagner 2017), which pushes the runner-up down as well.

A run depends on its own seed alone (its starting strokes or pixels, and every view, come from
its generator), so runs resume, group and split among threads like any others. Each step spends
``views`` queries on the views and one on the image itself, which is what the runner keeps and
the stopping rules read. Reads nothing but the model: no prior here needs data
(:meth:`Strategy.needs` is empty), which ``identikit reconstruct`` records and enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.strategies.adam import adam_step
from identikit.strategies.base import Group, SearchState, Strategy, run_generator
from identikit.strategies.pen_strokes import PenStrokes, centres
from identikit.strategies.priors import total_variation
from identikit.strategies.registry import check_settings, register, require
from identikit.strategies.transforms import RandomAffine

CANVASES = ("strokes", "pixels")
OBJECTIVES = ("log-prob", "margin")


@register
@dataclass(frozen=True, kw_only=True)
class Reconstruction(Strategy):
    """Gradient ascent over random views of a pen-stroke (or sigmoid-pixel) canvas.

    Args:
        canvas: ``strokes`` (default) or ``pixels``.
        strokes: pen strokes of a ``strokes`` canvas (default 4).
        pen: the pen's radius, a share of the image's height (default 0.05: 1.4 pixels of 28,
            strokes about 3 pixels wide, as MNIST's are).
        views: random views averaged per step (default 16).
        shift, scale, degrees: the views' largest shift (a share of the side), change of
            size and rotation (defaults 0.1, 0.1, 15).
        noise: standard deviation of Gaussian pixel noise added to each view (default 0).
        objective: ``log-prob`` (default) or ``margin``.
        lr: Adam step size (default 0.03; control points span [-1, 1]).
        ink_weight: penalty on the mean ink (default 0.5).
        tv_weight: penalty on total variation (default 0).
        stroke_weight: penalty on each stroke's ink (its pressure through a sigmoid), so that
            strokes the class does not need fade away: the fewest strokes that do (default
            0.3; ``strokes`` canvas only).
        centre_weight: penalty on the squared distance of the ink's centre of mass from the
            image's centre, in [-1, 1] coordinates (default 2): the framing convention of
            datasets such as MNIST, whose digits are centred by their centre of mass (LeCun et
            al. 1998), stated as an assumption rather than learnt from data.
        polish_after: steps after which every view is the image itself, without transform
            or noise, and nothing is penalised: a polish that makes the model sure of the image
            as drawn, where the penalties would hold it below the target (default 0: never;
            ``identikit reconstruct`` polishes the last sixth of its steps).
    """

    name = "reconstruct"
    source = (
        "expectation over transformation (Athalye et al. 2018) on pen strokes (Li et al. 2020, "
        "diffvg); Olah et al. (2017), Feature Visualization"
    )
    white_box = True
    canvas: str = "strokes"
    strokes: int = 4
    pen: float = 0.05
    views: int = 16
    shift: float = 0.1
    scale: float = 0.1
    degrees: float = 15.0
    noise: float = 0.0
    objective: str = "log-prob"
    lr: float = 0.03
    ink_weight: float = 0.5
    tv_weight: float = 0.0
    stroke_weight: float = 0.3
    centre_weight: float = 2.0
    polish_after: int = 0

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "canvas", self.canvas in CANVASES, " or ".join(CANVASES))
        require(self, "objective", self.objective in OBJECTIVES, " or ".join(OBJECTIVES))
        require(self, "strokes", 1 <= self.strokes <= 32, "1 to 32")
        require(self, "pen", 0 < self.pen <= 0.5, "in (0, 0.5]")
        require(self, "views", 1 <= self.views <= 256, "1 to 256")
        require(self, "shift", 0 <= self.shift <= 0.5, "in [0, 0.5]")
        require(self, "scale", 0 <= self.scale < 1, "in [0, 1)")
        require(self, "degrees", 0 <= self.degrees <= 180, "in [0, 180]")
        for name in ("noise", "ink_weight", "tv_weight", "stroke_weight", "centre_weight"):
            require(self, name, getattr(self, name) >= 0, "a finite number >= 0")
        require(self, "lr", self.lr > 0, "a finite number > 0")
        require(self, "polish_after", self.polish_after >= 0, "a whole number >= 0")

    @property
    def queries_per_step(self) -> int:
        return self.views + 1

    def check_shape(self, shape: ImageShape) -> None:
        if min(shape.height, shape.width) < 4:
            raise IdentikitError(f"reconstruct: images of {shape} are too small to draw on")

    @property
    def pen_strokes(self) -> PenStrokes:
        return PenStrokes(strokes=self.strokes, radius=self.pen)

    @property
    def affine(self) -> RandomAffine:
        return RandomAffine(shift=self.shift, scale=self.scale, degrees=self.degrees)

    def init_memory(self, state: SearchState) -> dict[str, torch.Tensor]:
        # p: the canvas's parameters (strokes, or pixel logits); m, v, t: Adam's moments and
        # step count; best: the best mean objective so far. Each run's start comes from a
        # generator of its own seed (iteration -1, before any step's), so it depends on the
        # seed alone.
        device = state.images.device
        generators = [run_generator(seed, -1, device) for seed in state.seeds]
        if self.canvas == "strokes":
            p = self.pen_strokes.start(generators, 0.5, device)
        else:
            shape = state.images.shape[1:]
            noise = torch.stack(
                [torch.randn(shape, generator=g, device=device) for g in generators]
            )
            # A dark page (sigmoid(-2) = 0.12) with a little noise to break the symmetry.
            p = (noise * 0.1 - 2.0).flatten(1)
        return {
            "p": p,
            "m": torch.zeros_like(p),
            "v": torch.zeros_like(p),
            "t": torch.zeros_like(state.iterations),
            "best": torch.full_like(state.scores, float("-inf")),
        }

    def draw(self, parameters: torch.Tensor, shape: ImageShape) -> torch.Tensor:
        """The images (N, C, H, W) of the canvas parameters (N, ...)."""
        if self.canvas == "strokes":
            return self.pen_strokes.render(parameters, shape.dims)
        return torch.sigmoid(parameters.view(-1, *shape.dims))

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        shape = ImageShape.of(group.images.shape[1:])
        memory = group.memory
        runs = len(group.generators)
        with torch.enable_grad():
            p = memory["p"].detach().requires_grad_(True)
            x = self.draw(p, shape)
            strength = self._strength(memory)
            views = self._views(x, group.generators, strength)
            targets = group.targets.repeat_interleave(self.views)

            def value(images: torch.Tensor, logp: torch.Tensor, rows: slice) -> torch.Tensor:
                del images  # the objective is the model's alone; penalties are added below
                mine = targets[rows].view(-1, 1)
                own = logp.gather(1, mine).squeeze(1)
                if self.objective == "margin":
                    own = own - logp.scatter(1, mine, float("-inf")).max(dim=1).values
                return own

            seen, grad_views = classifier.value_and_grad(views.detach(), value)
            objective = seen.view(runs, self.views).mean(dim=1)
            penalty = (self._penalty(x) + self._stroke_penalty(p)) * strength
            # Ascend the mean over views minus the penalties: the views' gradients, averaged,
            # chained back through the views and the canvas to its parameters.
            total = (views * grad_views).sum() / self.views - penalty.sum()
            (gradient,) = torch.autograd.grad(total, p)
        memory["p"] = self._adam(memory, p.detach(), gradient)
        image = self.draw(memory["p"], shape).detach().clamp(0.0, 1.0)
        scores = classifier.log_probabilities(image).gather(1, group.targets.view(-1, 1))
        gain = objective.detach() - penalty.detach()
        # Progress on the mean over views: the image itself may stand still meanwhile.
        group.progressed = gain > memory["best"]
        memory["best"] = torch.maximum(memory["best"], gain)
        return image, scores.squeeze(1)

    def _stroke_penalty(self, parameters: torch.Tensor) -> torch.Tensor:
        """What each canvas (N, ...) pays for its strokes' ink (see ``stroke_weight``)."""
        if not self.stroke_weight or self.canvas != "strokes":
            return torch.zeros(parameters.shape[0], device=parameters.device)
        return self.stroke_weight * self.pen_strokes.inks(parameters).sum(dim=1)

    def _penalty(self, x: torch.Tensor) -> torch.Tensor:
        """What each image (N, C, H, W) pays: its mean ink, its total variation, and how far
        its ink's centre of mass is from the image's centre."""
        penalty = self.ink_weight * x.mean(dim=(1, 2, 3))
        if self.tv_weight:
            penalty = penalty + self.tv_weight * total_variation(x)
        if self.centre_weight:
            ink = x.mean(dim=1)  # (N, H, W)
            total = ink.sum(dim=(1, 2)).clamp_min(1e-6)
            ys = centres(ink.shape[1], ink).view(1, -1, 1)
            xs = centres(ink.shape[2], ink).view(1, 1, -1)
            row = (ink * ys).sum(dim=(1, 2)) / total
            column = (ink * xs).sum(dim=(1, 2)) / total
            penalty = penalty + self.centre_weight * (row.pow(2) + column.pow(2))
        return penalty

    def _strength(self, memory: dict[str, torch.Tensor]) -> torch.Tensor:
        """How much of the random views and penalties each run sees this step (N,): all of
        them, or none once it polishes (see ``polish_after``)."""
        if not self.polish_after:
            return torch.ones(memory["t"].shape, device=memory["p"].device)
        return (memory["t"] < self.polish_after).to(memory["p"].dtype)

    def _views(
        self,
        x: torch.Tensor,
        generators: list[torch.Generator],
        strength: torch.Tensor,
        copies: int = 1,
    ) -> torch.Tensor:
        """``views`` random views of each image, run by run: (N * copies * views, C, H, W) of
        ``x``, (N * copies, C, H, W), ``copies`` images a run; a run's images share its views
        (its transforms and noise, drawn from its generator and scaled by its ``strength``)."""
        runs, device = len(generators), x.device
        draws = torch.stack(
            [torch.rand(self.views, 4, generator=g, device=device) for g in generators]
        )
        draws = (draws * 2 - 1) * strength.view(-1, 1, 1)
        theta = (
            self.affine.matrices(draws.flatten(0, 1)).to(x.dtype).view(runs, 1, self.views, 2, 3)
        )
        theta = theta.expand(runs, copies, self.views, 2, 3).flatten(0, 2)
        repeated = x.repeat_interleave(self.views, dim=0)
        grid = torch.nn.functional.affine_grid(theta, list(repeated.shape), align_corners=False)
        seen = torch.nn.functional.grid_sample(
            repeated, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        if self.noise:
            shape = x.shape[1:]
            noise = torch.stack(
                [torch.randn(self.views, *shape, generator=g, device=device) for g in generators]
            )
            noise = (noise * strength.view(-1, 1, 1, 1, 1)).unsqueeze(1)  # (N, 1, views, ...)
            noise = noise.expand(runs, copies, self.views, *shape).flatten(0, 2)
            seen = (seen + self.noise * noise).clamp(0.0, 1.0)
        return seen

    def _adam(
        self, memory: dict[str, torch.Tensor], p: torch.Tensor, gradient: torch.Tensor
    ) -> torch.Tensor:
        """The parameters ``p`` one Adam step up ``gradient``; the moments in ``memory`` are
        updated."""
        return p + adam_step(memory, gradient, self.lr)
