"""Registry of model architectures: adding one is a new module and one ``@register`` line.

Every architecture maps pixels in [0, 1], images (N, C, H, W) of MNIST's shape
(:data:`identikit.data.datasets.MNIST_SHAPE`), to logits (N, classes), and owns its default
training recipe (:class:`identikit.models.training_config.TrainConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from identikit.base.errors import IdentikitError
from identikit.models.training_config import TrainConfig


@dataclass(frozen=True)
class Architecture:
    """A named model constructor with its default training recipe."""

    name: str
    build: Callable[[int], nn.Module]
    training: TrainConfig
    description: str


ARCHITECTURES: dict[str, Architecture] = {}


def register(
    name: str, *, training: TrainConfig, description: str
) -> Callable[[Callable[[int], nn.Module]], Callable[[int], nn.Module]]:
    """Decorator adding a constructor ``f(num_classes) -> nn.Module`` to the registry."""

    def wrap(build: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
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


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model of architecture ``name``."""
    return get_architecture(name).build(num_classes)


# Importing the modules registers their architectures.
from identikit.models import cnn, mlp, softmax  # noqa: E402,F401
