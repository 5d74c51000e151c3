"""Registry of model architectures: adding one is a new module and one ``@register`` line.

Every architecture maps pixels in [0, 1], images (N, C, H, W) of the shape it was built for
(MNIST's, :data:`identikit.data.datasets.MNIST_SHAPE`, unless told), to logits (N, classes), and
owns its default training recipe (:class:`identikit.models.training_config.TrainConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.training_config import TrainConfig

Constructor = Callable[[int, ImageShape], nn.Module]
"""``f(num_classes, shape)``: a freshly initialised model for images of ``shape``."""


@dataclass(frozen=True)
class Architecture:
    """A named model constructor with its default training recipe."""

    name: str
    build: Constructor
    training: TrainConfig
    description: str


ARCHITECTURES: dict[str, Architecture] = {}


def register(
    name: str, *, training: TrainConfig, description: str
) -> Callable[[Constructor], Constructor]:
    """Decorator adding a constructor ``f(num_classes, shape) -> nn.Module`` to the registry."""

    def wrap(build: Constructor) -> Constructor:
        ARCHITECTURES[name] = Architecture(name, build, training, description)
        return build

    return wrap


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``, or a clear error listing the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise IdentikitError(f"unknown model architecture {name!r}; known: {known}") from None


def build_model(
    name: str, num_classes: int = 10, input_shape: ImageShape = MNIST_SHAPE
) -> nn.Module:
    """A freshly initialised model of architecture ``name`` for images of ``input_shape``; a
    shape the architecture cannot take is a one-line error."""
    return get_architecture(name).build(num_classes, input_shape)


def smallest_side(name: str, shape: ImageShape, side: int) -> None:
    """Refuse, in one line, images smaller than ``side`` x ``side`` for architecture ``name``
    (its poolings would leave nothing)."""
    if shape.height < side or shape.width < side:
        raise IdentikitError(
            f"model {name!r} takes images of at least {side} x {side} pixels, not {shape}"
        )


# Importing the modules registers their architectures.
from identikit.models import cnn, colour_cnn, mlp, resnet, softmax  # noqa: E402,F401
