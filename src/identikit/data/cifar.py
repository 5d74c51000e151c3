"""CIFAR-10 from its distributed files (``cifar10:DIR``).

CIFAR-10 (Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images", Tech.
report, University of Toronto): 60,000 colour images of 32 x 32 pixels in ten classes, 50,000
for training in five batches and 10,000 for testing. Two of its distributions are read, from
``DIR`` or the folder their archives unpack to inside it:

* the binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin``
  and ``test_batch.bin``, each a run of 3,073-byte records: one label byte, then the 1,024 red,
  1,024 green and 1,024 blue values of the image, rows in order; ``batches.meta.txt`` names the
  classes, one a line;
* the Python version (``cifar-10-batches-py``): the same batches without ``.bin``, each a
  pickled dict with ``data`` (a uint8 array of N x 3,072 values, as above) and ``labels``.
  A pickle can run any code when loaded, and even NumPy's own constructors accept states that
  read memory, so these are never unpickled: :mod:`identikit.data.pickles` interprets their
  opcodes itself and builds nothing but the dict, its strings, integers and lists, and the
  uint8 array, made from the file's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from identikit.base.errors import DataError, IdentikitError
from identikit.base.safe_files import read_regular
from identikit.base.shapes import ImageShape
from identikit.data.image_set import ImageSet, check_labels, integer_labels
from identikit.data.pickles import read_pickle

CIFAR_SHAPE = ImageShape(3, 32, 32)
RECORD = 1 + CIFAR_SHAPE.size  # one label byte, then the pixels
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""CIFAR-10's classes in label order, as its ``batches.meta.txt`` lists them."""

Batch = tuple[np.ndarray, np.ndarray]
Reader = Callable[[Path, Path], Batch]
"""Reads one batch file (inside a root folder) into images (N, 3, 32, 32) and labels."""


def load_cifar10(folder: Path, *, name: str | None = None) -> ImageSet:
    """CIFAR-10 from ``folder``: the binary version where its six batches are there, else the
    Python version; ``name`` defaults to ``cifar10:<folder>``."""
    name = name or f"cifar10:{folder}"
    places = (folder, folder / "cifar-10-batches-bin", folder / "cifar-10-batches-py")
    for place in places:
        if not _missing(place, ".bin"):
            return _assemble(place, ".bin", _binary_batch, _binary_names(place), name)
        if not _missing(place, ""):
            return _assemble(place, "", _python_batch, _python_names(place), name)
    for place in places:  # some batches there: say which are not
        for suffix in (".bin", ""):
            missing = _missing(place, suffix)
            if len(missing) < len(BATCHES):
                raise DataError(f"{place}: lacks {', '.join(missing)} of CIFAR-10")
    raise DataError(
        f"{folder}: no CIFAR-10 batches; expected data_batch_1.bin .. data_batch_5.bin and "
        "test_batch.bin (the binary version) or the same names without .bin (the Python version)"
    )


def _missing(place: Path, suffix: str) -> list[str]:
    """The batch files, each name with ``suffix``, that ``place`` lacks."""
    return [f"{batch}{suffix}" for batch in BATCHES if not (place / f"{batch}{suffix}").is_file()]


def _assemble(
    place: Path, suffix: str, read: Reader, class_names: tuple[str, ...], name: str
) -> ImageSet:
    """The six batches in ``place`` (file names ending in ``suffix``), read by ``read``."""
    batches = []
    for batch in BATCHES:
        path = place / f"{batch}{suffix}"
        images, labels = read(path, place)
        check_labels(labels, len(images), len(class_names), str(path))
        batches.append((images, labels))
    *train, test = batches
    return ImageSet(
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=test[0],
        test_labels=test[1],
        class_names=class_names,
        shape=CIFAR_SHAPE,
        name=name,
    )


def _bytes(path: Path, root: Path) -> bytes:
    try:
        return read_regular(path, root=root)
    except IdentikitError as exc:
        raise DataError(str(exc)) from None


def _binary_batch(path: Path, root: Path) -> Batch:
    """One batch of the binary version: whole records only."""
    data = _bytes(path, root)
    if not data or len(data) % RECORD:
        raise DataError(
            f"{path}: {len(data):,} bytes is not a whole number of {RECORD:,}-byte records "
            "(truncated, or not CIFAR-10's binary version)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    images = records[:, 1:].reshape(-1, *CIFAR_SHAPE.dims).copy()
    return images, records[:, 0].astype(np.int64)


def _binary_names(place: Path) -> tuple[str, ...]:
    """The class names in ``batches.meta.txt``, or CIFAR-10's own where it is absent."""
    meta = place / "batches.meta.txt"
    if not meta.is_file():
        return CLASS_NAMES
    text = _bytes(meta, place).decode("utf-8", "replace")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) < 2:
        raise DataError(f"{meta}: {len(names)} class name(s), expected one a line")
    return names


def _python_batch(path: Path, root: Path) -> Batch:
    """One batch of the Python version, read without unpickling (a dict, or a refusal)."""
    batch = read_pickle(_bytes(path, root), str(path))
    data = _entry(batch, "data", path)
    labels = _entry(batch, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: data must be a uint8 array of N x {CIFAR_SHAPE.size} values")
    if data.shape[1] != CIFAR_SHAPE.size:
        raise DataError(
            f"{path}: data rows hold {data.shape[1]} values, expected {CIFAR_SHAPE.size}"
        )
    if isinstance(labels, list) and all(
        type(label) is int and abs(label) < 2**62 for label in labels
    ):
        labels = np.array(labels, dtype=np.int64)
    if not isinstance(labels, np.ndarray):
        raise DataError(f"{path}: labels must be a list of integers")
    return data.reshape(-1, *CIFAR_SHAPE.dims).copy(), integer_labels(labels, str(path))


def _entry(batch: dict[str | bytes, object], key: str, path: Path) -> object:
    """``batch[key]``: keys are bytes in the distributed files (pickled by Python 2), text in
    copies pickled again by Python 3."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path}: no {key!r} entry")


def _python_names(place: Path) -> tuple[str, ...]:
    """The class names in the pickled ``batches.meta``, or CIFAR-10's own where it is absent."""
    meta = place / "batches.meta"
    if not meta.is_file():
        return CLASS_NAMES
    names = _entry(read_pickle(_bytes(meta, place), str(meta)), "label_names", meta)
    if (
        not isinstance(names, list)
        or len(names) < 2
        or not all(isinstance(name, str | bytes) for name in names)
    ):
        raise DataError(f"{meta}: label_names must be a list of at least two names")
    # Python 2 wrote the names as bytes: text here, as the binary version's meta file gives.
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)
