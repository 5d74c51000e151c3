"""Parameterisations (identikit.strategies.parameterisations): the Fourier basis maps to real
images of the right shape and back, the decorrelated colour basis round-trips, and gradient
ascent chains the image's gradient back to the parameters it moves."""

from __future__ import annotations

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.strategies.parameterisations import (
    CHANNEL_CORRELATION,
    DecorrelatedColour,
    Fourier,
    colour_correlation_root,
)
from identikit.strategies.priors import Prior


def images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 1, 8, 8), (2, 3, 16, 41), (1, 1, 7, 5)])
def test_fourier_maps_coefficients_to_real_images_of_the_shape_and_back(
    shape: tuple[int, int, int, int],
) -> None:
    fourier = Fourier(shape[2], shape[3])
    x = images(shape)
    parameters = fourier.from_image(x)
    assert parameters.shape == (*shape[:2], shape[2], shape[3] // 2 + 1, 2)
    assert parameters.dtype == torch.float32
    back = fourier.to_image(parameters)
    assert back.shape == shape and back.dtype == torch.float32  # real, not complex
    assert torch.allclose(back, x, atol=1e-5)
    # Any coefficients make a real image of the shape.
    assert fourier.to_image(torch.randn(parameters.shape)).shape == shape


def test_fourier_coefficients_are_scaled_by_one_over_their_frequency() -> None:
    fourier = Fourier(16, 16)
    scale = fourier.scale(torch.device("cpu"))
    assert scale[0, 0] == 16.0  # the constant, bounded at the image's lowest frequency
    assert scale[0, 1] == 16.0  # one cycle per image
    assert scale[0, 8] == pytest.approx(2.0)  # the highest, half a cycle per pixel
    # A unit step of the constant coefficient moves every pixel of a square image by one.
    step = torch.zeros(1, 1, 16, 9, 2)
    step[..., 0, 0, 0] = 1.0
    assert torch.allclose(fourier.to_image(step), torch.ones(1, 1, 16, 16))
    # The same step of a high frequency moves pixels far less.
    high = torch.zeros(1, 1, 16, 9, 2)
    high[..., 8, 8, 0] = 1.0
    assert fourier.to_image(high).abs().max() < 0.2


def test_fourier_refuses_images_of_another_size() -> None:
    with pytest.raises(IdentikitError, match="fourier prior is of 8x8 images, got 8x9"):
        Fourier(8, 8).from_image(torch.zeros(1, 1, 8, 9))


def test_the_decorrelated_colour_basis_round_trips() -> None:
    colour = DecorrelatedColour()
    x = images((2, 3, 5, 7))
    parameters = colour.from_image(x)
    assert parameters.shape == x.shape
    assert torch.allclose(colour.to_image(parameters), x, atol=1e-5)
    assert torch.allclose(colour.from_image(colour.to_image(x)), x, atol=1e-5)


def test_the_colour_root_squares_to_the_modelled_covariance() -> None:
    root = colour_correlation_root().double()
    covariance = root @ root.T
    expected = torch.full((3, 3), CHANNEL_CORRELATION, dtype=torch.float64).fill_diagonal_(1.0)
    assert torch.allclose(covariance, expected, atol=1e-6)
    assert torch.allclose(root, root.T)  # symmetric: no channel is special
    assert torch.allclose(root.norm(dim=0), torch.ones(3, dtype=torch.float64), atol=1e-6)
    # A step of equal decorrelated coordinates is a step along luminance, grey stays grey.
    grey = DecorrelatedColour().to_image(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(grey, grey[0].expand(3))
    with pytest.raises(IdentikitError, match="colour correlation must be in"):
        DecorrelatedColour(1.0)


def test_the_colour_basis_is_for_three_channels() -> None:
    with pytest.raises(IdentikitError, match="mixes 3 channels"):
        DecorrelatedColour().to_image(torch.zeros(1, 1, 4, 4))


def test_gradients_chain_back_to_the_parameters() -> None:
    colour, fourier = DecorrelatedColour(), Fourier(6, 6)
    prior = colour + fourier
    assert prior.parameterisations == (colour, fourier)
    x, g = images((2, 3, 6, 6)), images((2, 3, 6, 6), seed=1)
    # The image is the colour basis's image of the Fourier basis's.
    parameters = prior.from_image(x)
    assert torch.allclose(prior.to_image(parameters), x, atol=1e-5)
    assert torch.allclose(fourier.to_image(parameters), colour.from_image(x), atol=1e-5)
    # The colour map is linear: its pull-back is the transpose (the root is symmetric).
    pulled = (colour + Prior()).pull_back(x, g)
    root = colour_correlation_root()
    assert torch.allclose(pulled, torch.einsum("dc,ndhw->nchw", root, g), atol=1e-6)
    # Chained through both: the directional derivative matches <g, d image>.
    direction = torch.randn(parameters.shape, generator=torch.Generator().manual_seed(2))
    change = prior.to_image(parameters + direction) - prior.to_image(parameters)
    assert torch.allclose((prior.pull_back(x, g) * direction).sum(), (g * change).sum(), rtol=1e-4)
    # Without parameterisations the gradient is the image's own.
    assert Prior().pull_back(x, g) is g
