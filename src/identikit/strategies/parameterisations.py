"""Parameterisations of an image for gradient ascent: what Adam moves instead of the pixels.

After Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill, section
"Preconditioning and Parameterization": the same objective, ascended in another basis, finds
other images. Steepest ascent in pixels favours high frequencies and colours that vary channel by
channel; in a basis where natural images' coordinates are decorrelated and of like variance, it
finds images closer to natural ones.

- :class:`DecorrelatedColour`: each pixel's colour is ``M @ p`` with ``M`` the square root of a
  3 x 3 colour covariance, so ``p`` has decorrelated channels.
- :class:`Fourier`: the image is the inverse real FFT of coefficients scaled by one over their
  spatial frequency, so that every coefficient's step changes the image by about as much as
  natural images' 1/f amplitude spectrum (Field 1987) would have it.

Both maps are linear and invertible: the strategy keeps the image in [0, 1] by clipping it and
mapping it back to its parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError
from identikit.strategies.priors import Parameterisation

# The correlation of every pair of RGB channels in the colour model below. Not a measurement: a
# round value of the size measured in natural photographs, whose R, G and B are close to
# collinear (Ruderman, Cronin & Chiao 1998, "Statistics of cone responses to natural images",
# find the decorrelated axes to be a luminance and two colour-opponent axes, as this model's
# eigenvectors are).
CHANNEL_CORRELATION = 0.9
RGB = 3


@functools.cache
def colour_correlation_root(correlation: float = CHANNEL_CORRELATION) -> torch.Tensor:
    """The symmetric square root (3, 3) of the RGB covariance with unit variances and
    ``correlation`` between every pair of channels.

    Its eigenvectors are luminance (1, 1, 1) and two opponent axes; their standard deviations are
    sqrt(1 + 2 rho) and sqrt(1 - rho). Its columns have unit length (the diagonal of the
    covariance), so a unit step of one decorrelated coordinate moves a pixel by one unit.
    """
    if not -0.5 < correlation < 1:  # else the covariance is not positive definite
        raise IdentikitError(f"a colour correlation must be in (-0.5, 1), got {correlation}")
    covariance = torch.full((RGB, RGB), correlation, dtype=torch.float64)
    covariance.fill_diagonal_(1.0)
    values, vectors = torch.linalg.eigh(covariance)
    root: torch.Tensor = (vectors @ torch.diag(values.sqrt()) @ vectors.T).float()
    return root


@dataclass(frozen=True)
class DecorrelatedColour(Parameterisation):
    """Pixels ``M @ p`` of decorrelated colour coordinates ``p`` (the same shape as images),
    ``M`` the :func:`colour_correlation_root` of ``correlation``. Three-channel images only."""

    correlation: float = CHANNEL_CORRELATION

    def __post_init__(self) -> None:
        colour_correlation_root(self.correlation)  # refuses a correlation out of range

    def to_image(self, parameters: torch.Tensor) -> torch.Tensor:
        return _mix(colour_correlation_root(self.correlation), parameters)

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        return _mix(_inverse_root(self.correlation), images)


@functools.cache
def _inverse_root(correlation: float) -> torch.Tensor:
    inverse: torch.Tensor = torch.linalg.inv(colour_correlation_root(correlation).double())
    return inverse.float()


def _mix(matrix: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Each pixel's channels (N, 3, H, W) multiplied by ``matrix`` (3, 3)."""
    if images.shape[1] != RGB:
        raise IdentikitError(
            f"the colour prior mixes {RGB} channels (RGB); the images have {images.shape[1]}"
        )
    mixed: torch.Tensor = torch.einsum(
        "cd,ndhw->nchw", matrix.to(images.device, images.dtype), images
    )
    return mixed


@dataclass(frozen=True)
class Fourier(Parameterisation):
    """Images (N, C, height, width) as the inverse real FFT of frequency-scaled coefficients.

    The parameters (N, C, height, width // 2 + 1, 2) are the real and imaginary parts of
    ``rfft2(image) / scale`` (orthonormal FFT), with ``scale = 1 / max(f, 1 / max(height,
    width))`` for a spatial frequency of f cycles per pixel: one over the frequency, bounded at
    the lowest frequency the image holds. A unit step of the constant coefficient then moves
    every pixel of a square image by one unit, and a step of a higher frequency by less.
    """

    height: int
    width: int

    def scale(self, device: torch.device) -> torch.Tensor:
        """The scale of each coefficient (height, width // 2 + 1)."""
        fy = torch.fft.fftfreq(self.height, device=device).view(-1, 1)
        fx = torch.fft.rfftfreq(self.width, device=device).view(1, -1)
        frequency = (fy.pow(2) + fx.pow(2)).sqrt()
        scale: torch.Tensor = 1.0 / frequency.clamp(min=1.0 / max(self.height, self.width))
        return scale

    def to_image(self, parameters: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(parameters.contiguous()) * self.scale(parameters.device)
        image: torch.Tensor = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return image

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != (self.height, self.width):
            raise IdentikitError(
                f"the fourier prior is of {self.height}x{self.width} images, got "
                f"{'x'.join(map(str, images.shape[-2:]))}"
            )
        spectrum = torch.fft.rfft2(images, norm="ortho") / self.scale(images.device)
        return torch.view_as_real(spectrum)
