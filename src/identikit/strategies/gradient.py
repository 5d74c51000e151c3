"""White-box gradient ascent on the target class, with optional image priors.

Activation maximisation (Erhan et al. 2009) as applied to class models by Simonyan, Vedaldi &
Zisserman (2013), "Deep Inside Convolutional Networks": maximise the target's log-probability
(or its logit margin over the strongest other class) by gradient ascent in pixel space, here with
Adam steps (Kingma & Ba 2015) projected onto the pixel box [0, 1]. Priors (``tv``, ``l2``,
``blur``, ``jitter``, ``manifold``; see :mod:`identikit.strategies.priors`) trade confidence for
images that look more like images. Three more, after Olah, Mordvintsev & Schubert (2017),
"Feature Visualization", Distill, are for colour images of any size: ``colour`` and ``fourier``
ascend in a decorrelated colour basis and a frequency-scaled Fourier basis
(:mod:`identikit.strategies.parameterisations`), ``transforms`` asks for robustness to random
shifts, scalings and rotations (:mod:`identikit.strategies.transforms`). Each step is one forward
and backward pass per run (one query); with ``jitter`` or ``transforms`` a second, unchanged
forward pass records the score (two queries).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier, Objective
from identikit.strategies.adam import adam_step
from identikit.strategies.base import Group, SearchState, Strategy
from identikit.strategies.parameterisations import RGB, DecorrelatedColour, Fourier
from identikit.strategies.priors import (
    PRIOR_INPUT,
    Blur,
    Jitter,
    ManifoldDistance,
    Prior,
    PriorInputs,
    PriorNeeds,
    PriorTerm,
    SquaredNorm,
    Subspace,
    TotalVariation,
    parse_priors,
)
from identikit.strategies.registry import check_settings, register, require
from identikit.strategies.transforms import RandomAffine

OBJECTIVES = ("log-prob", "margin")
MIN_BLUR_SIGMA = 0.01
# The order in which the named priors compose; penalties are paid in it, views applied in it,
# and the image is the colour basis's image of the Fourier basis's.
COMPOSITION = ("tv", "l2", "manifold", "blur", "jitter", "transforms", "colour", "fourier")
# The priors that add a view, and so a second forward pass to score the image itself.
VIEWS = ("jitter", "transforms")


@register
@dataclass(frozen=True, kw_only=True)
class GradientAscent(Strategy):
    """Adam ascent on the target log-probability (or logit margin), projected onto [0, 1].

    Args:
        lr: Adam step size in pixel units (default 0.1).
        objective: ``log-prob`` (default) or ``margin``.
        priors: comma-separated subset of tv, l2, blur, jitter, manifold, colour, fourier,
            transforms (default none).
        tv_weight, l2_weight: penalty weights (defaults 0.002, 0.001).
        blur_sigma: Gaussian blur applied to the iterate after each step (default 0.4).
        jitter_pixels: largest random shift, in pixels, before each gradient (default 1).
        manifold_weight: weight of the squared distance from the principal subspace of the
            training images (default 2.0), given with :meth:`with_inputs` by the caller that
            knows them.
        manifold_components: dimension of that subspace (default 40; at most the values of
            one image, checked against the model's shape).
        prior_decay: the penalties are multiplied by this each step (default 0.995), so that
            they shape the image first and give way to confidence later.
    """

    name = "gradient"
    source = (
        "Erhan et al. (2009); Simonyan, Vedaldi & Zisserman (2013), "
        '"Deep Inside Convolutional Networks"'
    )
    white_box = True
    lr: float = 0.1
    objective: str = "log-prob"
    priors: str = ""
    tv_weight: float = 0.002
    l2_weight: float = 0.001
    blur_sigma: float = 0.4
    jitter_pixels: int = 1
    manifold_weight: float = 2.0
    manifold_components: int = 40
    prior_decay: float = 0.995
    # What the manifold prior is given (not a setting): see PriorInputs.
    subspace: Subspace | None = field(default=None, repr=False, compare=False, metadata=PRIOR_INPUT)

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "objective", self.objective in OBJECTIVES, " or ".join(OBJECTIVES))
        require(self, "lr", self.lr > 0, "a finite number > 0")
        for weight in ("tv_weight", "l2_weight", "manifold_weight"):
            require(self, weight, getattr(self, weight) >= 0, "a finite number >= 0")
        # The kernel divides by 2 sigma^2 in float32: below about 1e-19 that is 0 and the
        # kernel NaN, and a 5x5 kernel narrower than MIN_BLUR_SIGMA leaves the image as it is.
        require(self, "blur_sigma", self.blur_sigma >= MIN_BLUR_SIGMA, f">= {MIN_BLUR_SIGMA}")
        require(self, "jitter_pixels", 0 <= self.jitter_pixels <= 2, "0, 1 or 2")
        require(self, "manifold_components", self.manifold_components >= 1, "at least 1")
        require(self, "prior_decay", 0 < self.prior_decay <= 1, "in (0, 1]")
        parse_priors(self.priors)

    @property
    def queries_per_step(self) -> int:
        return 2 if set(VIEWS) & set(parse_priors(self.priors)) else 1

    def check_shape(self, shape: ImageShape) -> None:
        names = parse_priors(self.priors)
        if "colour" in names and shape.channels != RGB:
            raise IdentikitError(
                f"gradient: the colour prior needs images of {RGB} channels (RGB); "
                f"the model takes {shape}"
            )
        if "manifold" in names and self.manifold_components > shape.size:
            raise IdentikitError(
                f"gradient: --option manifold_components must be at most {shape.size:,} "
                f"(the values of one {shape} image), got {self.manifold_components}"
            )

    def needs(self) -> PriorNeeds:
        if "manifold" in parse_priors(self.priors):
            return PriorNeeds(subspace_components=self.manifold_components)
        return PriorNeeds()

    def with_inputs(self, inputs: PriorInputs) -> GradientAscent:
        inputs.check(self.needs())
        return dataclasses.replace(self, subspace=inputs.subspace)

    def prior(self, shape: ImageShape | None = None) -> Prior:
        """The named priors with their settings, composed in the order of COMPOSITION; the
        Fourier basis is of images of ``shape`` (needed for it alone)."""
        names = parse_priors(self.priors)
        terms: dict[str, PriorTerm] = {
            "tv": TotalVariation(self.tv_weight),
            "l2": SquaredNorm(self.l2_weight),
            "blur": Blur(self.blur_sigma),
            "jitter": Jitter(self.jitter_pixels),
            "transforms": RandomAffine(),
            "colour": DecorrelatedColour(),
        }
        if "fourier" in names:
            if shape is None:
                raise IdentikitError("gradient: the fourier prior needs the images' shape")
            terms["fourier"] = Fourier(shape.height, shape.width)
        if "manifold" in names:
            PriorInputs(self.subspace).check(self.needs())  # one line where it is missing
            assert self.subspace is not None
            terms["manifold"] = ManifoldDistance(self.manifold_weight, self.subspace)
        prior = Prior()
        for name in COMPOSITION:
            if name in names:
                prior += terms[name]
        return prior

    def init_memory(self, state: SearchState) -> dict[str, torch.Tensor]:
        # x: the image; g: the objective's gradient at x with respect to the parameters Adam
        # moves (x itself, or its colour or Fourier coordinates; unknown before the first
        # step, whose update is therefore zero); m, v, t: Adam's moments and step count.
        prior = self.prior(ImageShape.of(state.images.shape[1:]))
        zeros = torch.zeros_like(prior.from_image(state.images))
        return {
            "best": torch.full_like(state.scores, float("-inf")),
            "x": state.images.clone(),
            "g": zeros,
            "m": zeros.clone(),
            "v": zeros.clone(),
            "t": torch.zeros_like(state.iterations),
        }

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        prior = self.prior(ImageShape.of(group.images.shape[1:]))
        memory = group.memory
        x = self._update(memory, prior)
        target_scores: list[torch.Tensor] = []

        def value(images: torch.Tensor, logp: torch.Tensor, rows: slice) -> torch.Tensor:
            targets = group.targets[rows].view(-1, 1)
            own = logp.gather(1, targets).squeeze(1)
            target_scores.append(own.detach())
            if self.objective == "margin":
                own = own - logp.scatter(1, targets, float("-inf")).max(dim=1).values
            # Penalties fade by prior_decay per step: early steps find an image that looks
            # like a digit, later ones make the model sure of it (a continuation method).
            fade = self.prior_decay ** memory["t"][rows].to(own.dtype)
            return prior.penalise(own, images, fade)

        probe, objective, gradient = _ascend(classifier, prior, x, group.generators, value)
        memory["g"] = prior.pull_back(x, gradient)
        # Progress on the objective itself: while priors shape the image the target's
        # probability may stand still, and such a run is not stuck.
        group.progressed = objective > memory["best"]
        memory["best"] = torch.maximum(memory["best"], objective)
        memory["x"] = x
        if probe is x:
            scores = torch.cat(target_scores)
        else:  # the shifted image was scored: score the image itself too
            scores = classifier.log_probabilities(x).gather(1, group.targets.view(-1, 1))
            scores = scores.squeeze(1)
        return x, scores

    def _update(self, memory: dict[str, torch.Tensor], prior: Prior) -> torch.Tensor:
        """One Adam step (Kingma & Ba 2015) on every run, then the prior's transforms, then
        the box."""
        # The parameters of the image (the image itself without a colour or Fourier basis),
        # taken from the clipped image so that the box holds.
        parameters = prior.from_image(memory["x"])
        step = adam_step(memory, memory["g"], self.lr)
        x = prior.transform(prior.to_image(parameters + step))
        return x.clamp(0.0, 1.0)


def _ascend(
    classifier: Classifier,
    prior: Prior,
    x: torch.Tensor,
    generators: list[torch.Generator],
    value: Objective,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the model sees of ``x`` (the prior's views of it), the objective there and its
    gradient with respect to ``x``: chained back through the views that ask for it
    (``transforms``), the gradient at the view itself otherwise (``jitter``, as it always was)."""
    if not prior.chained:
        probe = prior.view(x, generators)
        return probe, *classifier.value_and_grad(probe, value)
    with torch.enable_grad():
        source = x.detach().requires_grad_(True)
        probe = prior.view(source, generators)
        objective, seen = classifier.value_and_grad(probe.detach(), value)
        (gradient,) = torch.autograd.grad(probe, source, seen)
    return probe.detach(), objective, gradient
