"""Datasets in one NumPy ``.npz`` archive (``npz:FILE``).

The archive holds ``images``, uint8 ``N x H x W`` (grey) or ``N x H x W x C`` (channels last,
as NumPy, Pillow and TensorFlow write images), and ``labels``, one integer per image; optionally
``test_images`` and ``test_labels`` in the same form (else a fixed random sixth is held out), and
``class_names``, one string per class (else the classes are named by their numbers). It is read
with identikit's safe reader: no pickles, every array's size checked before it is inflated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from identikit.base.errors import DataError, IdentikitError
from identikit.base.safe_files import read_npz
from identikit.base.shapes import ImageShape
from identikit.data.image_set import (
    ImageSet,
    channels_first,
    class_count,
    integer_labels,
    seeded_split,
)

KNOWN = ("images", "labels", "test_images", "test_labels", "class_names")


def load_npz_images(path: Path, *, name: str | None = None) -> ImageSet:
    """The dataset in the ``.npz`` archive ``path``; ``name`` defaults to ``npz:<path>``."""
    try:
        arrays = read_npz(path)
    except DataError:
        raise
    except IdentikitError as exc:  # the safe reader's refusals, as the data error they are
        raise DataError(str(exc)) from None
    unknown = sorted(set(arrays) - set(KNOWN))
    missing = [key for key in ("images", "labels") if key not in arrays]
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown arrays {unknown}"
        raise DataError(f"{path}: {what}; expected {', '.join(KNOWN)} (the last three optional)")
    if ("test_images" in arrays) != ("test_labels" in arrays):
        raise DataError(f"{path}: test_images and test_labels come together, or neither")
    images = _images(arrays["images"], f"{path}: images")
    labels = integer_labels(arrays["labels"], f"{path}: labels")
    _same_count(images, labels, path, "")
    if "test_images" in arrays:
        test_images = _images(arrays["test_images"], f"{path}: test_images")
        test_labels = integer_labels(arrays["test_labels"], f"{path}: test_labels")
        _same_count(test_images, test_labels, path, "test_")
        if test_images.shape[1:] != images.shape[1:]:  # compared as the file has them
            raise DataError(
                f"{path}: test_images are {_dims(arrays['test_images'])} but images are "
                f"{_dims(arrays['images'])}"
            )
        parts = (images, labels, test_images, test_labels)
    else:
        parts = seeded_split(images, labels)
    implied = class_count(labels, parts[3], subject=f"{path}: labels")
    names = _class_names(arrays.get("class_names"), implied, path)
    shape = ImageShape.of(images.shape[1:])
    return ImageSet(
        *parts,
        class_names=names,
        shape=shape,
        name=name or f"npz:{path}",
        held_out="test_images" not in arrays,
    )


def _images(array: np.ndarray, subject: str) -> np.ndarray:
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` as ``(N, C, H, W)``."""
    if array.dtype != np.uint8:
        raise DataError(f"{subject} must be uint8 (pixel values 0..255), got {array.dtype}")
    if array.ndim not in (3, 4) or 0 in array.shape[1:]:
        raise DataError(f"{subject} have shape {array.shape}; expected N x H x W or N x H x W x C")
    if len(array) == 0:  # an empty test split would score 0.00% on nothing
        raise DataError(f"{subject} holds no images (shape {array.shape}); at least one is needed")
    if array.ndim == 4 and array.shape[3] > 4 and array.shape[1] <= 4:
        # (N, 3, 32, 32) read as channels-last would be 32 channels of 3 x 32 pixels.
        raise DataError(
            f"{subject} have shape {array.shape}, which looks channels-first; "
            "store them as N x H x W x C"
        )
    return channels_first(array)


def _same_count(images: np.ndarray, labels: np.ndarray, path: Path, prefix: str) -> None:
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} {prefix}images but {len(labels)} {prefix}labels")


def _dims(images: np.ndarray) -> str:
    return "x".join(str(n) for n in images.shape[1:])


def _class_names(array: np.ndarray | None, implied: int, path: Path) -> tuple[str, ...]:
    """The archive's class names, or the numbers 0..``implied``-1; there must be a name for
    every label."""
    if array is None:
        return tuple(str(c) for c in range(implied))
    if array.dtype.kind not in "US" or array.ndim != 1:
        raise DataError(f"{path}: class_names must be a list of strings, got {array.dtype}")
    class_count(np.array([len(array) - 1]), subject=f"{path}: class_names")  # before decoding
    names = tuple(
        item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        for item in array.tolist()
    )
    if len(names) < implied:
        raise DataError(f"{path}: {len(names)} class_names but labels reach {implied - 1}")
    return names
