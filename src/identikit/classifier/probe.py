"""Probing a model: what running it on a few images tells that its file does not.

A model file need not say how many classes its model returns, nor whether its outputs are
logits, probabilities or log-probabilities. :func:`describe` runs the model on four probe
images (blank, gray and two of uniform noise), checks that it returns one finite row of
scores per image, and completes the model's :class:`~identikit.models.info.ModelInfo`: the
number of classes (checked against any expected), the class names (checked against it), and
the kind of outputs where none was given
(:func:`~identikit.models.preprocessing.detect_output_kind`).

A model that fails on the probe images together raises :class:`ProbeFailed`; the Classifier
then probes a PyTorch model one image at a time, and one that runs so takes a batch of 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from identikit.base.errors import IdentikitError, first_line
from identikit.base.limits import CLASSES
from identikit.base.shapes import ImageShape
from identikit.models.info import ModelInfo, batch_text
from identikit.models.preprocessing import detect_output_kind

Forward = Callable[[torch.Tensor], torch.Tensor]


class ProbeFailed(IdentikitError):
    """The model failed on the probe images, scored together: it raised, or did not return one
    row of scores per image. A PyTorch model that runs on each probe image alone takes a batch
    of 1 (see :mod:`identikit.models.one_image`); for any other, this is the error to show."""


def probe_pixels(shape: ImageShape, random: int, *, seed: int) -> torch.Tensor:
    """Probe images of ``shape``: a blank one, a gray one and ``random`` uniform-noise ones
    (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            torch.zeros(shape.batch(1)),
            torch.full(shape.batch(1), 0.5),
            torch.rand(shape.batch(random), generator=generator),
        ]
    )


@torch.inference_mode()
def probe_outputs(forward: Forward, info: ModelInfo, device: torch.device) -> torch.Tensor:
    """The model's outputs (N, classes) on the probe images; a one-line error naming the model
    for anything else."""
    info.preprocessing.check(info.input_shape)
    probes = probe_pixels(info.input_shape, 2, seed=0).to(device)
    try:
        out = forward(info.preprocessing.to_model(probes))
    except IdentikitError:
        raise
    except Exception as exc:  # whatever the user's model raises on a well-formed input
        # The shape is the user's (--input-shape) or MNIST's: the likeliest fault is a model
        # made for another, which the user can name.
        layout = " channels last" if info.preprocessing.channels_last else ""
        raise ProbeFailed(
            f"{info.name} fails on images of shape {batch_text(info.input_shape)}{layout} "
            f"(--input-shape C,H,W gives another): {first_line(exc, limit=1000)}"
        ) from None
    if out.dim() != 2 or out.shape[0] != len(probes) or out.shape[1] < 2:
        raise ProbeFailed(
            f"{info.name}: expected outputs of shape (N, classes), got {tuple(out.shape)}"
        )
    CLASSES.check(int(out.shape[1]), f"{info.name}'s outputs")
    return out


def describe(forward: Forward, info: ModelInfo, device: torch.device) -> ModelInfo:
    """``info`` completed by probing ``forward`` (model inputs -> outputs) on ``device``: its
    number of classes, class names and kind of outputs, each checked against what ``info``
    expected."""
    out = probe_outputs(forward, info, device)
    classes = int(out.shape[1])
    if info.classes is not None and info.classes < 2:
        raise IdentikitError(f"--classes must be at least 2, got {info.classes}")
    if info.classes is not None and info.classes != classes:
        raise IdentikitError(f"{info.name} returns {classes} classes, expected {info.classes}")
    names = tuple(info.class_names or [str(c) for c in range(classes)])
    if len(names) != classes:
        raise IdentikitError(
            f"{info.name}: {len(names)} class names (--class-names, or those the model file "
            f"records) for a model of {classes} classes"
        )
    detected = info.preprocessing.outputs is None
    outputs = detect_output_kind(out) if detected else info.preprocessing.outputs
    return dataclasses.replace(
        info,
        classes=classes,
        class_names=names,
        preprocessing=dataclasses.replace(info.preprocessing, outputs=outputs),
        outputs_detected=detected,
    )
