"""A model's own view of an image: input range, normalisation, and what its outputs mean.

identikit keeps images in pixel space [0, 1]; a user's model may expect pixels in [-1, 1] or
[0, 255], normalised by a mean and standard deviation, and may return logits, probabilities or
log-probabilities. :class:`Preprocessing` maps identikit pixels to the model's inputs and its
outputs back to log-probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError

INPUT_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
OUTPUT_KINDS = ("logits", "probabilities", "log-probabilities")


@dataclass(frozen=True)
class Preprocessing:
    """How pixels in [0, 1] become model inputs: scaled to ``input_range``, then
    ``(x - mean) / std``. ``outputs`` says what the model returns (None: detect it)."""

    input_range: str = "0,1"
    mean: float = 0.0
    std: float = 1.0
    outputs: str | None = None

    def __post_init__(self) -> None:
        if self.input_range not in INPUT_RANGES:
            raise IdentikitError(
                f"--input-range must be one of {', '.join(INPUT_RANGES)}, got {self.input_range}"
            )
        # nan and inf would make every model input nan, and nan passes any comparison's "not".
        if not (isinstance(self.mean, int | float) and math.isfinite(self.mean)):
            raise IdentikitError(f"--mean must be a finite number, got {self.mean!r}")
        if not (isinstance(self.std, int | float) and math.isfinite(self.std) and self.std > 0):
            raise IdentikitError(f"--std must be a finite number > 0, got {self.std!r}")
        if self.outputs is not None and self.outputs not in OUTPUT_KINDS:
            raise IdentikitError(f"--outputs must be one of {', '.join(OUTPUT_KINDS)}")

    @property
    def is_identity(self) -> bool:
        return self.input_range == "0,1" and self.mean == 0.0 and self.std == 1.0

    def to_model(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the model's input space."""
        if self.is_identity:
            return pixels
        low, high = INPUT_RANGES[self.input_range]
        return (pixels * (high - low) + low - self.mean) / self.std

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's input space -> pixels in [0, 1] (the inverse of :meth:`to_model`)."""
        low, high = INPUT_RANGES[self.input_range]
        return (inputs * self.std + self.mean - low) / (high - low)


def to_log_probabilities(outputs: torch.Tensor, kind: str) -> torch.Tensor:
    """Model outputs of the given kind -> log-probabilities."""
    outputs = outputs.float()
    if kind == "logits":
        return torch.log_softmax(outputs, dim=1)
    if kind == "probabilities":
        # Renormalise (exported softmaxes sum to 1 only up to rounding), floor at the smallest
        # positive float so that a probability of 0 gives a finite log.
        total = outputs.sum(1, keepdim=True)
        return (outputs / total).clamp_min(torch.finfo(torch.float32).tiny).log()
    return outputs


def detect_output_kind(outputs: torch.Tensor) -> str:
    """Guess what a model's outputs are from a few of them.

    Rows that are all <= 0 and whose exponentials sum to 1 are log-probabilities; rows in [0, 1]
    that sum to 1 are probabilities; anything else is taken for logits.
    """
    outputs = outputs.double()
    if (outputs <= 1e-6).all() and (outputs.logsumexp(1).abs() < 1e-3).all():
        return "log-probabilities"
    if ((outputs >= 0) & (outputs <= 1)).all() and ((outputs.sum(1) - 1).abs() < 1e-3).all():
        return "probabilities"
    return "logits"
