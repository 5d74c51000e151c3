"""A model's own view of an image: input range, normalisation, layout, and what its outputs mean.

identikit keeps images in pixel space [0, 1], a batch (N, C, H, W); a user's model may expect
pixels in [-1, 1] or [0, 255], normalised by a mean and standard deviation (one for all
channels, or one per channel, as torchvision's ImageNet models take), laid out channels last
(N, H, W, C, as Keras and TensorFlow models take), and may return logits, probabilities or
log-probabilities. :class:`Preprocessing` maps identikit pixels to the model's inputs and its
outputs back to log-probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape

INPUT_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
OUTPUT_KINDS = ("logits", "probabilities", "log-probabilities")
LAYOUTS = ("nchw", "nhwc")

Values = float | tuple[float, ...]
"""A mean or std: one value for every channel, or one per channel."""


def values_text(values: Values) -> str:
    """A mean or std as the options write it: ``0.5`` or ``0.485,0.456,0.406``."""
    return ",".join(f"{v:g}" for v in _as_tuple(values))


def _as_tuple(values: Values) -> tuple[float, ...]:
    return values if isinstance(values, tuple) else (values,)


def _checked(values: object, name: str, *, positive: bool) -> Values:
    """``values`` as one float or a tuple of two or more, each finite (and > 0 if
    ``positive``); a one-line error naming the option otherwise."""
    items = tuple(values) if isinstance(values, list | tuple) else (values,)
    what = "a finite number > 0" if positive else "a finite number"
    # nan and inf would make every model input nan, and nan passes any comparison's "not".
    for v in items:
        good = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not good or (positive and v <= 0):
            raise IdentikitError(f"--{name} must be {what} (or one per channel), got {v!r}")
    if not items:
        raise IdentikitError(f"--{name} must be {what} (or one per channel), got none")
    # One value is kept as a plain float: what a scalar --mean has always been.
    return float(items[0]) if len(items) == 1 else tuple(float(v) for v in items)


@dataclass(frozen=True)
class Preprocessing:
    """How pixels in [0, 1] become model inputs: scaled to ``input_range``, then
    ``(x - mean) / std`` (``mean`` and ``std``: one value, or one per channel), then laid out
    as ``layout`` says: ``nchw`` as identikit keeps them, ``nhwc`` channels last (None: read
    from the model where its file says, else ``nchw``). ``outputs`` says what the model
    returns (None: detect it)."""

    input_range: str = "0,1"
    mean: Values = 0.0
    std: Values = 1.0
    outputs: str | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        if self.input_range not in INPUT_RANGES:
            raise IdentikitError(
                f"--input-range must be one of {', '.join(INPUT_RANGES)}, got {self.input_range}"
            )
        object.__setattr__(self, "mean", _checked(self.mean, "mean", positive=False))
        object.__setattr__(self, "std", _checked(self.std, "std", positive=True))
        if self.outputs is not None and self.outputs not in OUTPUT_KINDS:
            raise IdentikitError(f"--outputs must be one of {', '.join(OUTPUT_KINDS)}")
        if self.layout is not None and self.layout not in LAYOUTS:
            raise IdentikitError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout}")

    @property
    def channels_last(self) -> bool:
        return self.layout == "nhwc"

    @property
    def is_identity(self) -> bool:
        """Whether the model takes identikit's pixels as they are."""
        return (
            self.input_range == "0,1"
            and self.mean == 0.0
            and self.std == 1.0
            and not self.channels_last
        )

    def check(self, shape: ImageShape) -> None:
        """Refuse, in one line, a per-channel mean or std whose length is not ``shape``'s
        number of channels."""
        for name in ("mean", "std"):
            count = len(_as_tuple(getattr(self, name)))
            if count not in (1, shape.channels):
                c = shape.channels
                raise IdentikitError(
                    f"--{name} has {count} values, but the model's images ({shape}) have "
                    f"{c} channel{'s' if c > 1 else ''}: give 1 value{f' or {c}' if c > 1 else ''}"
                )

    def model_dims(self, shape: ImageShape) -> tuple[int, int, int]:
        """The shape of one model input for images of ``shape``: (C, H, W) or (H, W, C)."""
        c, h, w = shape.dims
        return (h, w, c) if self.channels_last else (c, h, w)

    def describe(self) -> str:
        """The conventions in one short line, e.g. ``pixels 0,1; mean 0.485,0.456,0.406; std
        0.229,0.224,0.225; layout nhwc``."""
        parts = [f"pixels {self.input_range}"]
        if self.mean != 0.0 or self.std != 1.0:
            parts += [f"mean {values_text(self.mean)}", f"std {values_text(self.std)}"]
        parts.append(f"layout {self.layout or 'nchw'}")
        if self.outputs is not None:
            parts.append(f"outputs {self.outputs}")
        return "; ".join(parts)

    def to_model(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], (N, C, H, W) -> the model's input space and layout."""
        inputs = pixels
        if not (self.input_range == "0,1" and self.mean == 0.0 and self.std == 1.0):
            low, high = INPUT_RANGES[self.input_range]
            if isinstance(self.mean, float) and isinstance(self.std, float):
                # The expression of every scalar run so far: its results stay bit for bit.
                inputs = (pixels * (high - low) + low - self.mean) / self.std
            else:
                mean, std = self._column(self.mean, pixels), self._column(self.std, pixels)
                inputs = (pixels * (high - low) + low - mean) / std
        if self.channels_last:
            inputs = inputs.permute(0, 2, 3, 1).contiguous()
        return inputs

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's input space and layout -> pixels in [0, 1], (N, C, H, W) (the inverse
        of :meth:`to_model`)."""
        if self.channels_last:
            inputs = inputs.permute(0, 3, 1, 2)
        low, high = INPUT_RANGES[self.input_range]
        mean, std = self._column(self.mean, inputs), self._column(self.std, inputs)
        return (inputs * std + mean - low) / (high - low)

    @staticmethod
    def _column(values: Values, like: torch.Tensor) -> torch.Tensor | float:
        """A scalar as it is; per-channel values as a (C, 1, 1) tensor that broadcasts over a
        batch (N, C, H, W)."""
        if isinstance(values, float):
            return values
        return torch.tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


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
