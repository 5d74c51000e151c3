"""Evaluating a classifier on labelled images: accuracy, per-class accuracy and the confusion
matrix, for a PyTorch module or any model behind a Classifier (checkpoint, TorchScript, ONNX)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from identikit.base.arguments import instance_of
from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier

EVAL_BATCH = 1000


def to_pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images (N, C, H, W), or (N, H, W) of one channel, -> float pixels in [0, 1], shape
    (N, C, H, W), on ``device``."""
    pixels = torch.from_numpy(images).to(device)
    if pixels.dim() == 3:
        pixels = pixels.unsqueeze(1)
    return pixels.float().div_(255.0)


@dataclass
class Evaluation:
    """Accuracy over a labelled set, per class, and the confusion matrix (rows: true class)."""

    accuracy: float
    per_class: list[float]
    confusion: list[list[int]]


def _some_images(images: np.ndarray, labels: np.ndarray) -> None:
    """Refuse an empty set: its accuracy is undefined, and would be printed as 0.00%."""
    if len(images) == 0 or len(labels) == 0:
        raise IdentikitError(
            f"nothing to evaluate on: {len(images)} images and {len(labels)} labels; "
            "give a dataset whose test split holds images"
        )


def _evaluation(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> Evaluation:
    truth = labels.astype(np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    totals = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), totals, out=np.zeros(num_classes), where=totals > 0)
    accuracy = float(np.trace(confusion) / max(len(truth), 1))
    return Evaluation(accuracy, [float(a) for a in per_class], confusion.tolist())


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, *, device: torch.device | None = None
) -> Evaluation:
    """Evaluate ``model`` (in eval mode) on uint8 ``images`` (N, C, H, W) or (N, H, W) and
    their ``labels``."""
    instance_of(model, nn.Module, "model", "a torch.nn.Module")
    _some_images(images, labels)
    device = device or next(model.parameters()).device
    model.eval()
    num_classes = int(model(to_pixels(images[:1], device).zero_()).shape[1])
    predictions = [
        model(to_pixels(images[start : start + EVAL_BATCH], device)).argmax(1).cpu()
        for start in range(0, len(images), EVAL_BATCH)
    ]
    predicted = torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)
    return _evaluation(predicted, labels, num_classes)


def evaluate_classifier(
    classifier: Classifier, images: np.ndarray, labels: np.ndarray
) -> Evaluation:
    """Evaluate any model behind a :class:`Classifier` (checkpoint, TorchScript, ONNX)."""
    _some_images(images, labels)
    if len(labels) and int(labels.max()) >= classifier.num_classes:
        raise IdentikitError(
            f"{classifier.name} has {classifier.num_classes} classes; the data "
            f"has labels up to {int(labels.max())}"
        )
    predictions = [
        classifier.log_probabilities(
            to_pixels(images[start : start + EVAL_BATCH], torch.device("cpu"))
        )
        .argmax(1)
        .cpu()
        for start in range(0, len(images), EVAL_BATCH)
    ]
    predicted = torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)
    return _evaluation(predicted, labels, classifier.num_classes)
