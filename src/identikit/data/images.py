"""Every dataset identikit reads, by one name: ``load_images(spec) -> ImageSet``.

The specs:

* ``mnist``, ``fashion-mnist``, ``idx:DIR``: the IDX datasets of :mod:`identikit.data.datasets`,
  as one grey channel (``(N, 1, H, W)``);
* ``npz:FILE``: arrays in a NumPy archive (:mod:`identikit.data.npz_files`);
* ``folder:DIR``: a folder of pictures, one subfolder per class
  (:mod:`identikit.data.image_folders`);
* ``cifar10:DIR``: CIFAR-10's binary or Python version (:mod:`identikit.data.cifar`);
* ``sklearn-digits``: the 8 x 8 digits inside scikit-learn (:mod:`identikit.data.sklearn_digits`);
* ``shapes`` or ``shapes:SEED``: coloured shapes made from a seed (:mod:`identikit.data.shapes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from identikit.base.data_free import check_data_allowed
from identikit.base.errors import DataError
from identikit.data.cifar import load_cifar10
from identikit.data.datasets import DATASETS, dataset_name, get_spec, load_dataset
from identikit.data.image_folders import load_folder_images
from identikit.data.image_set import ImageSet
from identikit.data.npz_files import load_npz_images
from identikit.data.shapes import make_shapes
from identikit.data.sklearn_digits import load_sklearn_digits

FILE_SOURCES: dict[str, tuple[str, Callable[..., ImageSet]]] = {
    "npz": ("FILE", load_npz_images),
    "folder": ("DIR", load_folder_images),
    "cifar10": ("DIR", load_cifar10),
}
"""Spec prefixes naming a file or folder: what follows the colon, and the reader of it."""


def known_specs() -> tuple[str, ...]:
    """Every form of spec :func:`load_images` takes, for messages and help."""
    files = [f"{prefix}:{what}" for prefix, (what, _) in FILE_SOURCES.items()]
    return (*DATASETS, "idx:DIR", *files, "sklearn-digits", "shapes", "shapes:SEED")


def load_images(spec: str, root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The dataset ``spec`` names (see the module notes); ``root`` is where the IDX datasets'
    files are looked for (default ``$IDENTIKIT_DATA``, else ``~/.cache/identikit``)."""
    check_data_allowed(f"the dataset {dataset_name(spec)!r}")
    prefix, colon, rest = spec.partition(":")
    if colon and prefix in FILE_SOURCES:
        what, read = FILE_SOURCES[prefix]
        if not rest:
            raise DataError(f"{spec!r} names no {what.lower()}: write {prefix}:{what}")
        return read(Path(rest).expanduser(), name=spec)
    if prefix == "shapes":
        return make_shapes(_seed(rest) if colon else 0)
    if spec == "sklearn-digits":
        return load_sklearn_digits()
    if spec in DATASETS or prefix == "idx":
        return idx_images(spec, root)
    raise DataError(f"unknown dataset {spec!r}; known: {', '.join(known_specs())}")


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise DataError(f"shapes:{text}: the seed must be a whole number") from None
    if seed < 0:
        raise DataError(f"shapes:{text}: the seed must not be negative")
    return seed


def idx_images(name: str, root: str | os.PathLike[str] | None = None) -> ImageSet:
    """An IDX dataset (``mnist``, ``fashion-mnist``, ``idx:DIR``) as an :class:`ImageSet`:
    the arrays of :func:`~identikit.data.datasets.load_dataset` given their channel axis."""
    spec = get_spec(name)
    train_images, train_labels = load_dataset(name, "train", root)
    test_images, test_labels = load_dataset(name, "test", root)
    return ImageSet(
        train_images=train_images[:, None],
        train_labels=train_labels.astype(np.int64),
        test_images=test_images[:, None],
        test_labels=test_labels.astype(np.int64),
        class_names=spec.class_names,
        shape=spec.shape,
        name=name,
    )
