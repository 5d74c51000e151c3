"""Gradient ascent on colour images with the priors of Olah, Mordvintsev & Schubert (2017):
each moves its own parameters, raises the target's confidence, and keeps the image in [0, 1]."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models.info import ModelInfo
from identikit.strategies import Budget, SearchState, advance, initial_state, make_strategy
from identikit.strategies.parameterisations import DecorrelatedColour, Fourier
from identikit.strategies.transforms import RandomAffine

SHAPE = ImageShape(3, 16, 20)


def colour_classifier() -> Classifier:
    """A linear model of colour images: a random CNN's confidence hardly moves, this one's
    classes are reachable inside the pixel box."""
    torch.manual_seed(1)
    linear = nn.Linear(SHAPE.size, 10)
    with torch.no_grad():
        linear.weight.normal_(0, 0.02)
        linear.bias.zero_()
    model = nn.Sequential(nn.Flatten(), linear)
    return Classifier(model, ModelInfo(sha256="linear", input_shape=SHAPE))


def search(priors: str, steps: int = 25, **settings: object) -> SearchState:
    classifier = colour_classifier()
    strategy = make_strategy("gradient", priors=priors, **settings)
    state = initial_state(classifier, [2, 5], [0, 1], start="gray")
    advance(state, strategy, classifier, [Budget(steps * strategy.queries_per_step + 1)])
    return state


@pytest.mark.parametrize("priors", ["colour", "fourier", "transforms", "colour,fourier,transforms"])
def test_each_colour_prior_raises_the_targets_confidence(priors: str) -> None:
    state = search(priors)
    assert (state.iterations == 25).all()
    assert state.images.shape == SHAPE.batch(2)
    assert float(state.images.min()) >= 0.0 and float(state.images.max()) <= 1.0
    for history in state.history:
        assert history[0] < 0.2 and history[-1] > 0.4, history
    # The parameterisation, not the pixels, is what changes the search.
    assert not torch.allclose(state.images, search("").images, atol=1e-3)


def test_adam_moves_the_parameters_and_keeps_them_per_run() -> None:
    classifier = colour_classifier()
    strategy = make_strategy("gradient", priors="fourier,colour,tv")
    state = initial_state(classifier, [1, 2, 3], [0, 1, 2])
    memory = strategy.init_memory(state)
    assert memory["x"].shape == SHAPE.batch(3)
    for key in ("g", "m", "v"):  # the coefficients of the Fourier basis, real and imaginary
        assert memory[key].shape == (3, 3, 16, 11, 2)
    prior = strategy.prior(SHAPE)
    assert prior.parameterisations == (DecorrelatedColour(), Fourier(16, 20))
    assert make_strategy("gradient", priors="transforms").prior().views == (RandomAffine(),)


def test_manifold_components_are_bounded_by_the_image_not_by_mnist() -> None:
    assert make_strategy("gradient", manifold_components=3072).manifold_components == 3072
