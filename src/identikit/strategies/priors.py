"""Image priors: what keeps an identikit looking like an image rather than adversarial noise.

Each prior is a small value, and priors compose with ``+`` into one :class:`Prior`, as the
objectives of feature-visualisation libraries do (lucent's ``optvis.objectives``). There are
four kinds, by where they act:

- penalties (:class:`TotalVariation`, :class:`SquaredNorm`, :class:`ManifoldDistance`) are
  subtracted from a white-box objective, in the order they were added;
- transforms (:class:`Blur`) act on the iterate after each step;
- views (:class:`Jitter`, :class:`~identikit.strategies.transforms.RandomAffine`) change what
  the model sees when the gradient is taken;
- parameterisations (:mod:`identikit.strategies.parameterisations`: a decorrelated colour
  basis, a frequency-scaled Fourier basis) change what the optimiser moves: its iterate is
  their parameters, mapped to the image each step (Olah, Mordvintsev & Schubert 2017,
  "Feature Visualization", Distill).

Feature-visualisation work found each of them to move optimised images towards recognisable
ones: total variation (Mahendran & Vedaldi 2015), L2 decay, Gaussian blur and random jitter
(Yosinski et al. 2015, "Understanding Neural Networks Through Deep Visualization"; Mordvintsev
et al. 2015, "Inceptionism"). The manifold penalty is the squared distance from the principal
subspace of real training images (a linear model of the data manifold; Turk & Pentland 1991 used
the same "distance from face space" to tell faces from non-faces). That subspace is given to the
prior as a value (:class:`Subspace`), built by the caller that knows the training data: no prior
reads a file.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from identikit.base.errors import IdentikitError

PRIORS = ("tv", "l2", "blur", "jitter", "manifold", "colour", "fourier", "transforms")
# Metadata of a strategy's dataclass field that holds a prior input (see PriorInputs), which is
# none of its settings: never recorded, never set by a user.
PRIOR_INPUT = {"prior_input": True}
# Values of one image, at most, that the manifold prior's subspace is learnt for (see
# Subspace.of_images).
SUBSPACE_VALUES = 4096
# The 5 x 5 blur kernel, and the jitter's padding, reach this many pixels beyond an image's edge.
_REACH = 2


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


class PriorTerm(ABC):
    """Anything that composes into a :class:`Prior` with ``+``."""

    @abstractmethod
    def as_prior(self) -> Prior:
        """This term as a prior of one term."""

    def __add__(self, other: PriorTerm) -> Prior:
        first, second = self.as_prior(), other.as_prior()
        return Prior(
            penalties=first.penalties + second.penalties,
            transforms=first.transforms + second.transforms,
            views=first.views + second.views,
            parameterisations=first.parameterisations + second.parameterisations,
        )


@dataclass(frozen=True)
class Penalty(PriorTerm):
    """A cost per image, times ``weight``, that an objective gives up for a better image."""

    weight: float

    @abstractmethod
    def cost(self, images: torch.Tensor) -> torch.Tensor:
        """The unweighted cost of each image (N,) of a batch (N, C, H, W)."""

    def __call__(self, images: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
        """``scale x weight x cost`` per image; ``scale`` fades the penalty (one per image)."""
        # (scale * weight) first, the order in which identikits have always been computed.
        return scale * self.weight * self.cost(images)

    def as_prior(self) -> Prior:
        return Prior(penalties=(self,))


@dataclass(frozen=True)
class TotalVariation(Penalty):
    """Anisotropic total variation: the summed absolute differences of neighbouring pixels."""

    def cost(self, images: torch.Tensor) -> torch.Tensor:
        return total_variation(images)


@dataclass(frozen=True)
class SquaredNorm(Penalty):
    """The squared L2 norm of each image: the ink it spends."""

    def cost(self, images: torch.Tensor) -> torch.Tensor:
        return squared_norm(images)


@dataclass(frozen=True, eq=False)
class Subspace:
    """The affine subspace ``mean + span(basis)`` of image space, flattened: ``mean`` (P,) and
    orthonormal columns ``basis`` (P, components), for images of P values."""

    mean: torch.Tensor
    basis: torch.Tensor

    def __post_init__(self) -> None:
        if self.mean.dim() != 1 or self.basis.dim() != 2 or len(self.mean) != len(self.basis):
            raise IdentikitError(
                f"a subspace is a mean (P,) and a basis (P, components), got "
                f"{tuple(self.mean.shape)} and {tuple(self.basis.shape)}"
            )

    @property
    def pixels(self) -> int:
        """Values in one image of the space (C x H x W)."""
        return len(self.mean)

    @property
    def components(self) -> int:
        """Dimension of the subspace."""
        return int(self.basis.shape[1])

    @classmethod
    def of_images(cls, images: np.ndarray, components: int) -> Subspace:
        """The principal subspace of uint8 images (N, ...): their mean and the ``components``
        directions of largest variance (principal component analysis, Pearson 1901)."""
        pixels = math.prod(images.shape[1:])
        # vectors[:, -0:] would be every direction: a subspace of 0 components is the whole space.
        if not 1 <= components <= pixels:
            raise IdentikitError(
                f"the manifold prior's subspace takes 1..{pixels} components, got {components}"
            )
        # The covariance is P x P in float64 and its eigendecomposition O(P^3): 75 MB and a
        # few seconds for 3 x 32 x 32, 1.2 GB and minutes for 3 x 64 x 64.
        if pixels > SUBSPACE_VALUES:
            raise IdentikitError(
                f"the manifold prior learns from images of at most {SUBSPACE_VALUES:,} values; "
                f"these have {pixels:,}"
            )
        x = torch.from_numpy(images.reshape(len(images), -1)).double().div_(255.0)
        mean = x.mean(0)
        centred = x - mean
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        return cls(mean.float(), vectors[:, -components:].float())

    def distance(self, images: torch.Tensor) -> torch.Tensor:
        """Squared distance of each image (N, C, H, W) from the subspace."""
        if images[0].numel() != self.pixels:
            raise IdentikitError(
                f"the manifold prior's subspace is of images of {self.pixels} values; the "
                f"model takes {'x'.join(map(str, images.shape[1:]))} (the prior learns from the "
                "dataset a checkpoint records it was trained on, else from MNIST)"
            )
        return manifold_distance(images, self.mean, self.basis)


@dataclass(frozen=True)
class ManifoldDistance(Penalty):
    """The squared distance from ``subspace``, e.g. the training images' principal subspace."""

    subspace: Subspace

    def cost(self, images: torch.Tensor) -> torch.Tensor:
        return self.subspace.distance(images)


class Transform(PriorTerm):
    """A change of the iterate after each step (e.g. a blur)."""

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The transformed images (N, C, H, W)."""

    def as_prior(self) -> Prior:
        return Prior(transforms=(self,))


class View(PriorTerm):
    """A random change of what the model sees when the gradient is taken (e.g. a jitter).

    ``chained``: whether the gradient is chained back through the view to the image. A jitter's
    is not: the gradient at the shifted image stands for the image's own, as it always has.
    """

    chained: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """The changed images (N, C, H, W); image i draws from ``generators[i]`` alone."""

    def as_prior(self) -> Prior:
        return Prior(views=(self,))


@dataclass(frozen=True)
class Blur(Transform):
    """A 5 x 5 Gaussian blur of standard deviation ``sigma`` (applied to the iterate)."""

    sigma: float

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(images, self.sigma)


@dataclass(frozen=True)
class Jitter(View):
    """Shift each image by a random (dy, dx), each in [-pixels, pixels], before the gradient is
    taken; the shifts come from the runs' own generators (one per image)."""

    pixels: int

    def __post_init__(self) -> None:
        if not 0 <= self.pixels <= _REACH:
            raise IdentikitError(f"jitter shifts by 0..{_REACH} pixels, got {self.pixels}")

    def __call__(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """The shifted images; ``images`` itself (no number drawn) for a jitter of 0 pixels."""
        if not self.pixels:
            return images
        shifts = torch.stack(
            [
                torch.randint(
                    -self.pixels, self.pixels + 1, (2,), generator=g, device=images.device
                )
                for g in generators
            ]
        )
        return jitter(images, shifts)


class Parameterisation(PriorTerm):
    """What the optimiser moves instead of the pixels: parameters that map to the image.

    Both maps are linear and invertible here, so the box [0, 1] is kept by mapping the
    clipped image back to its parameters, and gradients chain through :meth:`to_image` by
    autograd.
    """

    @abstractmethod
    def to_image(self, parameters: torch.Tensor) -> torch.Tensor:
        """The images (N, C, H, W) of parameters (N, ...); differentiable."""

    @abstractmethod
    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        """The parameters (N, ...) whose image is ``images`` (N, C, H, W)."""

    def as_prior(self) -> Prior:
        return Prior(parameterisations=(self,))


@dataclass(frozen=True)
class Prior(PriorTerm):
    """Priors composed: ``penalties`` subtracted in order, ``transforms`` applied in order to
    the iterate, ``views`` applied in order to the image the gradient is taken at, and the
    image made of parameters by ``parameterisations``: the first is the image's own, each next
    one makes the parameters of the one before."""

    penalties: tuple[Penalty, ...] = ()
    transforms: tuple[Transform, ...] = ()
    views: tuple[View, ...] = ()
    parameterisations: tuple[Parameterisation, ...] = ()

    def as_prior(self) -> Prior:
        return self

    def penalise(
        self, value: torch.Tensor, images: torch.Tensor, scale: torch.Tensor | float = 1.0
    ) -> torch.Tensor:
        """``value`` less every penalty of ``images``, each scaled by ``scale``."""
        for penalty in self.penalties:
            value = value - penalty(images, scale)
        return value

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """The iterate after every transform."""
        for step in self.transforms:
            images = step(images)
        return images

    def view(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """What the model sees: ``images`` after every view (``images`` itself if none acts)."""
        for step in self.views:
            images = step(images, generators)
        return images

    @property
    def chained(self) -> bool:
        """Whether the gradient is chained back through the views (any of them asks)."""
        return any(step.chained for step in self.views)

    def to_image(self, parameters: torch.Tensor) -> torch.Tensor:
        """The images of the optimiser's parameters (the parameters themselves if none)."""
        for basis in reversed(self.parameterisations):
            parameters = basis.to_image(parameters)
        return parameters

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        """The optimiser's parameters of ``images`` (the images themselves if none)."""
        for basis in self.parameterisations:
            images = basis.from_image(images)
        return images

    def pull_back(self, images: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        """A gradient with respect to ``images`` as one with respect to their parameters
        (the chain rule, by autograd through :meth:`to_image`); itself if none."""
        if not self.parameterisations:
            return gradient
        with torch.enable_grad():
            parameters = self.from_image(images).detach().requires_grad_(True)
            (pulled,) = torch.autograd.grad(self.to_image(parameters), parameters, gradient)
        return pulled


@dataclass(frozen=True)
class PriorNeeds:
    """What a strategy's priors must be given from the training data (by default nothing).

    ``subspace_components``: the dimension of the training images' principal subspace that the
    manifold prior needs (0: none).
    """

    subspace_components: int = 0

    @property
    def data(self) -> bool:
        """Whether the priors learn anything from data."""
        return self.subspace_components > 0


@dataclass(frozen=True)
class PriorInputs:
    """What the caller that knows the training data gives a strategy's priors."""

    subspace: Subspace | None = None

    def check(self, needs: PriorNeeds) -> None:
        """Refuse inputs that lack what ``needs`` asks for."""
        wanted = needs.subspace_components
        if not wanted:
            return
        if self.subspace is None:
            raise IdentikitError(
                f"the manifold prior needs the principal subspace ({wanted} components) of the "
                "training images, and none was given"
            )
        if self.subspace.components != wanted:
            raise IdentikitError(
                f"the manifold prior needs a subspace of {wanted} components, "
                f"got one of {self.subspace.components}"
            )


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: the summed absolute differences of neighbours."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    return dx + dy


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    """Squared L2 norm per image (ink spent)."""
    return x.flatten(1).pow(2).sum(1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (N, C, H, W), each channel alone, with a 5x5 Gaussian kernel of standard
    deviation ``sigma``."""
    if not (math.isfinite(sigma) and sigma > 0):  # 0 divides by zero; nan blurs to nan
        raise IdentikitError(f"the blur's sigma must be a finite number > 0, got {sigma}")
    offsets = torch.arange(-_REACH, _REACH + 1, dtype=x.dtype, device=x.device)
    kernel_1d = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    side = 2 * _REACH + 1
    channels = x.shape[1]
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).view(1, 1, side, side)
    padded = F.pad(x, (_REACH,) * 4, mode="replicate")
    return F.conv2d(padded, kernel.expand(channels, 1, side, side), groups=channels)


def jitter(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image by its own (dy, dx) in ``shifts`` (N, 2), filling with black."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (_REACH,) * 4)
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(shifts.tolist()):  # a loop over runs, not over candidates
        top, left = _REACH + dy, _REACH + dx
        out[i] = padded[i, :, top : top + height, left : left + width]
    return out


def manifold_distance(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Squared distance per image from the affine subspace mean + span(basis)."""
    centred = x.flatten(1) - mean.to(x.device)
    basis = basis.to(x.device)
    residual = centred - (centred @ basis) @ basis.T
    return residual.pow(2).sum(1)
