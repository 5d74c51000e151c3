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
from identikit.data.image_set import TEST_FRACTION, ImageSet

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


@dataclass(frozen=True)
class Scored:
    """Which images an evaluation scored: the dataset's own test split, or a held-out share of
    its images where it has none (a score on 17 images is not a score on 10,000, and should
    say so)."""

    images: int
    held_out_of: int | None = None  # all the dataset's images, where the test ones are a share

    @classmethod
    def of(cls, data: ImageSet) -> Scored:
        """The test images of ``data``, as its reader split them."""
        images = len(data.test_images)
        return cls(images, images + len(data.train_images) if data.held_out else None)

    def record(self) -> dict[str, object]:
        """For JSON: ``split`` is ``test`` or ``held-out``, ``images`` how many were scored."""
        if self.held_out_of is None:
            return {"split": "test", "images": self.images}
        return {
            "split": "held-out",
            "images": self.images,
            "held_out_of": self.held_out_of,
            "held_out_share": round(TEST_FRACTION, 4),
        }

    def text(self) -> str:
        """For people: ``its test split of 10,000 images``, or ``17 images held out of its
        100 (about 1/6, at random: it has no test split)``."""
        if self.held_out_of is None:
            return f"its test split of {_images(self.images)}"
        return (
            f"{_images(self.images)} held out of its {self.held_out_of:,} (about "
            f"1/{round(1 / TEST_FRACTION)}, at random: it has no test split)"
        )


def _images(count: int) -> str:
    return f"{count:,} image{'s' if count != 1 else ''}"


def check_labelled(images: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` as arrays, where they are uint8 images (N, C, H, W) or (N, H, W)
    with one whole, non-negative label each; anything else is refused in one line naming the
    argument: float pixels in [0, 1] would be divided by 255 again and scored as near-black,
    and labels of another length would be paired with the wrong images."""
    pixels = instance_of(images, np.ndarray, "images", "a NumPy array of uint8 pixels")
    if pixels.dtype != np.uint8:
        raise IdentikitError(
            f"images must be uint8 (pixel values 0..255), got {pixels.dtype}; for pixels in "
            "[0, 1] pass (images * 255).round().astype(np.uint8)"
        )
    if pixels.ndim not in (3, 4):
        raise IdentikitError(f"images must be (N, C, H, W) or (N, H, W), got {pixels.shape}")
    truth = instance_of(labels, np.ndarray, "labels", "a NumPy array of class numbers")
    if truth.ndim != 1 or truth.dtype.kind not in "iu":
        raise IdentikitError(
            f"labels must be one class number per image, a 1-D integer array; got "
            f"{truth.dtype} of shape {truth.shape}"
        )
    if len(truth) != len(pixels):
        raise IdentikitError(f"{len(pixels)} images but {len(truth)} labels; give one each")
    _some_images(pixels, truth)
    if int(truth.min()) < 0:
        raise IdentikitError(f"labels must be class numbers from 0, got {int(truth.min())}")
    return pixels, truth


def _some_images(images: np.ndarray, labels: np.ndarray) -> None:
    """Refuse an empty set: its accuracy is undefined, and would be printed as 0.00%."""
    if len(images) == 0 or len(labels) == 0:
        raise IdentikitError(
            f"nothing to evaluate on: {len(images)} images and {len(labels)} labels; "
            "give a dataset whose test split holds images"
        )


def _labels_within(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Refuse a label the model has no output for (NumPy would raise an IndexError)."""
    if len(labels) and int(labels.max()) >= num_classes:
        raise IdentikitError(
            f"{name} has {num_classes} classes; the data has labels up to {int(labels.max())}"
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
    check_labelled(images, labels)
    # A module without parameters (a fixed function) runs on the CPU.
    device = device or next(model.parameters(), torch.empty(0)).device
    model.eval()
    num_classes = int(model(to_pixels(images[:1], device).zero_()).shape[1])
    _labels_within(labels, num_classes, type(model).__name__)
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
    instance_of(classifier, Classifier, "classifier", "a Classifier")
    check_labelled(images, labels)
    _labels_within(labels, classifier.num_classes, classifier.name)
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
