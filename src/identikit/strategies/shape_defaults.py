"""Defaults of black-box strategies that follow the image's size and channels.

The defaults identikit began with were made for MNIST's 1 x 28 x 28 grey digits, and they stay
exactly those on grey images of at least 28 x 28 pixels, so that MNIST's sweeps stay as
recorded. Elsewhere they are what ``benchmarks/any_shape.py`` measured to bring every run of
every class to 0.99 within 10,000 queries, on scikit-learn's 1 x 8 x 8 digits and on the
3 x 32 x 32 colour ``shapes`` (the README's table "Colour and other sizes, measured"):

- A random mask or a mutation changes about six values (``CHANGED_VALUES``): near certainty
  almost every larger random change lowers the score. On 3,072 colour values MNIST's 5% is 154
  of them; random-masks reached 0.99 in 10% of runs with it, and in 100% with 0.002 (six); on 64
  grey values evolution's 5% is three, and 0.1 (six) brought it from 98% to 100%.
- Random-masks tries 20 masks a step, not 500: 500 make only 20 steps of 10,000 queries
  (94% of runs on 8 x 8 and 10% on colour; 100% on both with 20).
- Square's windows move their pixels by half the range on images shorter than 16 pixels: on
  8 x 8 full-amplitude squares make near-binary images that stalled two runs of the ``1`` at
  0.85 (98% of runs; 100% at 0.5).

A strategy takes these where a setting is left at 0 ("from the image's shape"), in its
:meth:`~identikit.strategies.base.Strategy.for_shape`; the sweep records the values taken.
"""

from __future__ import annotations

from typing import Any

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.strategies.base import Strategy

# MNIST's pixels: grey images of at least this many keep the defaults made on MNIST.
MNIST_PIXELS = MNIST_SHAPE.height * MNIST_SHAPE.width
# Values a random change touches on average where MNIST's share is not kept (see above): 0.1
# of 8 x 8's 64 values, 0.002 of 3 x 32 x 32's 3,072, the densities measured best there.
CHANGED_VALUES = 6.4
# MNIST's settings, kept on grey images of its size or larger.
MNIST_CANDIDATES, MNIST_DENSITY = 500, 0.05
SMALL_CANDIDATES = 20
# The shorter side below which square's windows move pixels by SMALL_AMPLITUDE, not 1.
SMALL_SIDE, SMALL_AMPLITUDE = 16, 0.5


def mnist_sized(shape: ImageShape) -> bool:
    """Whether ``shape`` keeps MNIST's defaults: grey, at least MNIST's pixels."""
    return shape.channels == 1 and shape.height * shape.width >= MNIST_PIXELS


def few_values_density(shape: ImageShape) -> float:
    """The share of an image's values that is about CHANGED_VALUES of them (at most all)."""
    return min(1.0, CHANGED_VALUES / shape.size)


def mask_candidates(shape: ImageShape) -> int:
    """Random-masks' masks per step: MNIST's 500 on MNIST-sized grey images, else 20."""
    return MNIST_CANDIDATES if mnist_sized(shape) else SMALL_CANDIDATES


def mask_density(shape: ImageShape) -> float:
    """Random-masks' share of values a mask changes: MNIST's 5% on grey images (where 8 x 8
    reached every run with it), about six values on colour ones."""
    return MNIST_DENSITY if shape.channels == 1 else few_values_density(shape)


def mutation_density(shape: ImageShape) -> float:
    """Evolution's share of values a mutation changes: MNIST's 5% on MNIST-sized grey images,
    else about six values."""
    return MNIST_DENSITY if mnist_sized(shape) else few_values_density(shape)


def square_amplitude(shape: ImageShape) -> float:
    """How far square's windows move their pixels: the whole range, or half of it on images
    shorter than SMALL_SIDE."""
    return 1.0 if min(shape.height, shape.width) >= SMALL_SIDE else SMALL_AMPLITUDE


def shape_derived(strategy: Strategy, shape: ImageShape) -> dict[str, Any]:
    """The settings ``strategy`` takes from images of ``shape``, where they are not MNIST's:
    those a user left to the shape whose values differ from what they would be on MNIST
    (a square's side, half the shorter side, among them). Empty on MNIST."""
    own, shaped = strategy.settings(), strategy.for_shape(shape).settings()
    try:
        on_mnist = strategy.for_shape(MNIST_SHAPE).settings()
    except IdentikitError:  # a strategy for colour images only (a colour prior): none to say
        on_mnist = shaped
    return {
        key: value
        for key, value in shaped.items()
        if value != own[key] and value != on_mnist.get(key)
    }


def from_the_shape(strategy: Strategy) -> dict[str, Any]:
    """The settings of ``strategy`` left to the image's shape (those it changes when made for
    a shape), with the values they take on MNIST: what ``identikit strategies`` lists in place
    of their placeholder default, 0."""
    own = strategy.settings()
    try:
        on_mnist = strategy.for_shape(MNIST_SHAPE).settings()
    except IdentikitError:  # a strategy for colour images only
        return {}
    return {key: value for key, value in on_mnist.items() if value != own[key]}


def derived_line(strategy: Strategy, shape: ImageShape) -> str | None:
    """One line naming the settings taken from the image's shape (None where there are none,
    as on MNIST): what a search says before it starts."""
    derived = shape_derived(strategy, shape)
    if not derived:
        return None
    values = ", ".join(f"{key} {_number(value)}" for key, value in derived.items())
    dims = " x ".join(str(d) for d in shape.dims)
    return (
        f"{strategy.name} on {dims} images: {values} (from the image's shape; --option overrides)"
    )


def _number(value: Any) -> str:
    """A setting as the line shows it: numbers short (0.002, 20), anything else as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)
