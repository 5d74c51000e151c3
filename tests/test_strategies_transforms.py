"""Transformation robustness (identikit.strategies.transforms): random affine views keep the
images' shape, draw from each run's own generator, and their gradient chains back."""

from __future__ import annotations

import math

import pytest
import torch

from identikit.classifier.classifier import Classifier
from identikit.strategies import Budget, advance, initial_state, make_strategy
from identikit.strategies.priors import Jitter
from identikit.strategies.transforms import RandomAffine
from tests.helpers import toy_linear


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def images(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 8, 8), (2, 3, 16, 40)])
def test_transforms_keep_the_shape_and_the_box(shape: tuple[int, int, int, int]) -> None:
    x = images(shape)
    seen = RandomAffine()(x, generators(1, 2))
    assert seen.shape == x.shape and seen.dtype == x.dtype
    assert float(seen.min()) >= 0.0 and float(seen.max()) <= 1.0
    assert not torch.equal(seen, x)


def test_each_image_depends_on_its_own_generator_alone() -> None:
    x = images((3, 3, 16, 16))
    view = RandomAffine()
    first = view(x, generators(1, 2, 3))
    assert torch.equal(first, view(x, generators(1, 2, 3)))
    # Image 1 with generator 2, whichever generators the others have.
    assert torch.equal(first[1], view(x, generators(7, 2, 9))[1])
    assert not torch.equal(first[0], view(x, generators(4, 2, 3))[0])


def test_no_shift_scale_or_turn_is_the_image_itself() -> None:
    x = images((2, 3, 9, 11))
    still = RandomAffine(shift=0.0, scale=0.0, degrees=0.0)(x, generators(1, 2))
    assert torch.allclose(still, x, atol=1e-5)


def test_the_maps_stay_within_their_bounds() -> None:
    view = RandomAffine(shift=0.25, scale=0.1, degrees=30.0)
    corners = torch.tensor([[1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, -1.0]])
    theta = view.matrices(corners)
    assert theta[0, 1, 2] == pytest.approx(0.5) and theta[0, 0, 2] == pytest.approx(-0.5)
    # Scale 1.1 and a turn of 30 degrees: the linear part is a rotation over 1.1.
    linear = theta[0, :, :2]
    angle = math.radians(30.0)
    assert torch.allclose(linear.det(), torch.tensor(1 / 1.1**2))
    assert linear[1, 0].item() == pytest.approx(math.sin(angle) / 1.1)
    assert theta[1, 0, 0].item() == pytest.approx(math.cos(angle) / 0.9)


def test_the_transforms_prior_chains_its_gradient_and_spends_two_queries() -> None:
    assert RandomAffine.chained and not Jitter.chained
    strategy = make_strategy("gradient", priors="transforms")
    assert strategy.queries_per_step == 2
    classifier = Classifier(toy_linear(scale=0.3))
    state = initial_state(classifier, [3, 4], [0, 1])
    advance(state, strategy, classifier, [Budget(41)])
    assert (state.iterations == 20).all()
    assert int(state.queries.sum()) == classifier.queries
    assert (state.confidences > 0.9).all()
