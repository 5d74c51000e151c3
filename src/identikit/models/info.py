"""What is known about a model, as one value: :class:`ModelInfo`.

A model file's name and hash, the number and names of its classes, how pixels become its inputs
(:class:`~identikit.models.preprocessing.Preprocessing`), the shape of one input image, and the
card that results record (architecture, parameters, test accuracy, ...). Loading a file fills
in what the file says; probing the model (``identikit.classifier.probe``) fills in what only
running it tells (the classes, the kind of outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.preprocessing import Preprocessing


@dataclass(frozen=True)
class Expected:
    """What a user says a model must be: its number of classes, their names and the shape of
    its images (None: any, or what the model file says)."""

    classes: int | None = None
    class_names: tuple[str, ...] | None = None
    input_shape: ImageShape | None = None

    def __post_init__(self) -> None:
        if self.classes is not None and self.classes < 2:
            raise IdentikitError(f"--classes must be at least 2, got {self.classes}")
        if self.input_shape is not None:  # refused before a probe allocates images of it
            self.input_shape.check_size("--input-shape")


@dataclass(frozen=True)
class ModelInfo:
    """A model's description.

    Attributes:
        name: how results and messages refer to the model (its file name).
        sha256: hash of the model file's bytes, recorded in results (None: not from a file).
        classes: the number of classes (None until the model is probed, when not expected).
        class_names: names of the classes for tables and reports (None: the numbers; a
            checkpoint's own when it records them).
        preprocessing: the model's input range, normalisation and kind of outputs (outputs
            None until detected).
        input_shape: the shape of one image the model takes, C x H x W (a checkpoint records
            it, an ONNX file's static dimensions say it, else the user does; MNIST's when
            nothing says).
        outputs_detected: whether the kind of outputs was detected rather than given.
        card: what results record about the model beyond its hash (architecture, parameters,
            test accuracy, epochs, seed), so that a report never has to open the model file.
        trained_on: the dataset (a ``load_images`` spec) a checkpoint records it was trained
            on, which data-driven search priors learn from (None: not recorded).
    """

    name: str = "model"
    sha256: str | None = None
    classes: int | None = None
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    input_shape: ImageShape = MNIST_SHAPE
    outputs_detected: bool = False
    card: dict[str, Any] = field(default_factory=dict, compare=False)
    trained_on: str | None = field(default=None, compare=False)

    @property
    def outputs(self) -> str:
        """What the model returns: logits, probabilities or log-probabilities (known once
        given, or once the model is probed)."""
        if self.preprocessing.outputs is None:
            raise ValueError(f"{self.name}: the kind of outputs is known once it is probed")
        return self.preprocessing.outputs

    @property
    def num_classes(self) -> int:
        """The number of classes (known once expected, or once the model is probed)."""
        if self.classes is None:
            raise ValueError(f"{self.name}: the number of classes is known once it is probed")
        return self.classes


def batch_text(shape: ImageShape, count: str = "N") -> str:
    """A batch of ``shape`` as messages write it: ``(N, C, H, W)``, with the numbers."""
    return f"({', '.join([count, *(str(d) for d in shape.dims)])})"
