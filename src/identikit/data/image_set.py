"""One image dataset of any shape as a typed value, and the checks every reader of one shares.

An :class:`ImageSet` holds a training and a test split of uint8 images ``(N, C, H, W)``
(channel-first, like identikit's pixel tensors) with int64 labels ``(N,)``, the class names and
the image shape. Readers of files (``npz``, folders of pictures, CIFAR-10) build one through the
helpers here, so a bad file fails with the same one-line :class:`DataError` naming it whatever
its format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from identikit.base.errors import DataError, IdentikitError
from identikit.base.limits import CLASSES
from identikit.base.shapes import ImageShape

TEST_FRACTION = 1 / 6
"""The share of the images held out for testing when a source has no test split of its own
(MNIST's own ratio: 10,000 of 60,000 + 10,000)."""

SPLIT_SEED = 0
"""The seed of that split: fixed, so a dataset splits the same way on every machine and run."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A dataset's two splits, its class names and its image shape, checked on construction.

    ``name`` is how the user named it (``npz:digits.npz``); errors start with it.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    shape: ImageShape
    name: str
    # True where the source had no test split and the test images are a held-out share of its
    # images (seeded_split), so that a score on them can say what it was measured on.
    held_out: bool = False

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise DataError(f"{self.name}: {len(self.class_names)} class(es); at least two needed")
        CLASSES.check(len(self.class_names), self.name)
        for split in ("train", "test"):
            images, labels = self.split(split)
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
                raise DataError(f"{self.name}: {split} images must be a uint8 array")
            if images.shape[1:] != self.shape.dims or images.ndim != 4:
                raise DataError(
                    f"{self.name}: {split} images are {images.shape}, expected "
                    f"(N, {', '.join(map(str, self.shape.dims))})"
                )
            if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
                raise DataError(f"{self.name}: {split} labels must be an int64 array")
            check_labels(labels, len(images), len(self.class_names), f"{self.name} ({split})")
        for split, images in (("training", self.train_images), ("test", self.test_images)):
            # An empty test split would score an accuracy of 0.00% on nothing.
            if len(images) == 0:
                raise DataError(f"{self.name}: no {split} images")

    @property
    def classes(self) -> int:
        """How many classes the labels index."""
        return len(self.class_names)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of ``"train"`` or ``"test"``."""
        if split == "train":
            return self.train_images, self.train_labels
        if split == "test":
            return self.test_images, self.test_labels
        raise DataError(f"unknown split {split!r}; expected train or test")


def check_labels(labels: np.ndarray, count: int, classes: int, subject: str) -> None:
    """Refuse labels that are not one whole number in ``[0, classes)`` per image."""
    if labels.ndim != 1:
        raise DataError(f"{subject}: labels have shape {labels.shape}, expected one per image")
    if len(labels) != count:
        raise DataError(f"{subject}: {count} images but {len(labels)} labels")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise DataError(f"{subject}: label {bad} outside the {classes} classes 0..{classes - 1}")


def integer_labels(array: np.ndarray, subject: str) -> np.ndarray:
    """``array`` as int64 labels: it must hold integers (not floats, not booleans), one
    dimension, none negative."""
    if array.dtype.kind not in "iu":
        raise DataError(f"{subject}: labels must be integers, got {array.dtype}")
    if array.ndim != 1:
        raise DataError(f"{subject}: labels have shape {array.shape}, expected (N,)")
    if array.dtype == np.uint64 and len(array) and int(array.max()) > np.iinfo(np.int64).max:
        raise DataError(f"{subject}: label {int(array.max())} is too large")
    labels = array.astype(np.int64)
    if len(labels) and int(labels.min()) < 0:
        raise DataError(f"{subject}: negative label {int(labels.min())}")
    return labels


def class_count(*labels: np.ndarray, subject: str = "labels") -> int:
    """The number of classes the labels of every split imply: the largest label plus one,
    refused above :data:`~identikit.base.limits.CLASSES` before anything is built per class
    (one label of 2**62 would otherwise ask for 2**62 class names)."""
    count = max((int(part.max()) + 1 for part in labels if len(part)), default=0)
    try:
        CLASSES.check(count, f"{subject} (up to {count - 1:,})")
    except IdentikitError as exc:
        raise DataError(str(exc)) from None
    return count


def seeded_split(
    images: np.ndarray, labels: np.ndarray, *, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)``: a fixed random sixth of the
    images held out for testing, both parts in their original order."""
    count = len(images)
    if count < 2:
        raise DataError(f"{count} image(s): at least two are needed to hold some out for testing")
    held = min(count - 1, max(1, round(count * TEST_FRACTION)))
    order = np.random.default_rng(seed).permutation(count)
    test = np.sort(order[:held])
    train = np.sort(order[held:])
    return images[train], labels[train], images[test], labels[test]


def channels_first(images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` or ``(N, H, W, C)`` images as a contiguous ``(N, C, H, W)`` array."""
    if images.ndim == 3:
        return np.ascontiguousarray(images[:, None])
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
