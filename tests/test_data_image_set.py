"""ImageSet: the checks on construction, the labels helpers and the seeded split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.image_set import (
    ImageSet,
    channels_first,
    class_count,
    integer_labels,
    seeded_split,
)
from tests.helpers import one_line_message

SHAPE = ImageShape(3, 4, 5)


def _parts(**changes: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    parts: dict[str, Any] = {
        "train_images": rng.integers(0, 256, (6, 3, 4, 5), dtype=np.uint8),
        "train_labels": np.array([0, 1, 2, 0, 1, 2], dtype=np.int64),
        "test_images": rng.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8),
        "test_labels": np.array([2, 0], dtype=np.int64),
        "class_names": ("a", "b", "c"),
        "shape": SHAPE,
        "name": "toy",
    }
    return {**parts, **changes}


def test_a_valid_set_reads_back() -> None:
    images = ImageSet(**_parts())
    assert images.classes == 3 and images.shape == SHAPE
    train, labels = images.split("train")
    assert train.shape == SHAPE.batch(6) and labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert images.split("test")[0].shape == SHAPE.batch(2)
    with pytest.raises(DataError, match="unknown split"):
        images.split("validation")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"class_names": ("a",)}, "at least two"),
        ({"train_images": np.zeros((6, 3, 4, 5), dtype=np.float32)}, "uint8"),
        ({"train_images": np.zeros((6, 1, 4, 5), dtype=np.uint8)}, "expected (N, 3, 4, 5)"),
        ({"test_images": np.zeros((2, 4, 5), dtype=np.uint8)}, "test images"),
        ({"train_labels": np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)}, "int64"),
        ({"train_labels": np.array([0, 1, 2, 0, 1], dtype=np.int64)}, "6 images but 5 labels"),
        ({"test_labels": np.array([3, 0], dtype=np.int64)}, "label 3 outside the 3 classes"),
        ({"test_labels": np.array([-1, 0], dtype=np.int64)}, "label -1"),
        (
            {
                "train_images": np.zeros((0, 3, 4, 5), dtype=np.uint8),
                "train_labels": np.zeros(0, dtype=np.int64),
            },
            "no training images",
        ),
        (
            {
                "test_images": np.zeros((0, 3, 4, 5), dtype=np.uint8),
                "test_labels": np.zeros(0, dtype=np.int64),
            },
            "no test images",  # whatever the reader: evaluate would score 0.00% on nothing
        ),
    ],
)
def test_a_bad_set_is_refused_in_one_line(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DataError) as caught:
        ImageSet(**_parts(**changes))
    message = one_line_message(caught)
    assert message.startswith("toy") and fragment in message


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.array([0.0, 1.0]), "must be integers"),
        (np.array([True, False]), "must be integers"),
        (np.array([[0, 1]]), "expected (N,)"),
        (np.array([0, -2]), "negative label -2"),
        (np.array([2**63], dtype=np.uint64), "too large"),
    ],
)
def test_labels_must_be_whole_numbers(array: np.ndarray, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        integer_labels(array, "labels.npz")
    assert integer_labels(np.array([3, 0], dtype=np.uint8), "x").dtype == np.int64


def test_the_split_is_fixed_and_holds_a_sixth_out() -> None:
    images = np.arange(60, dtype=np.uint8).reshape(60, 1, 1, 1)
    labels = np.arange(60, dtype=np.int64) % 3
    first = seeded_split(images, labels)
    again = seeded_split(images, labels)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    train, train_labels, test, _ = first
    assert len(train) == 50 and len(test) == 10
    assert sorted(train.ravel().tolist() + test.ravel().tolist()) == list(range(60))
    assert np.all(np.diff(train.ravel().astype(int)) > 0)  # original order kept
    np.testing.assert_array_equal(train_labels, train.ravel() % 3)
    other = seeded_split(images, labels, seed=1)[2]
    assert not np.array_equal(other, test)
    with pytest.raises(DataError, match="at least two"):
        seeded_split(images[:1], labels[:1])
    assert [len(part) for part in seeded_split(images[:2], labels[:2])] == [1, 1, 1, 1]


def test_channels_first_and_class_count() -> None:
    grey = np.zeros((2, 4, 5), dtype=np.uint8)
    colour = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    assert channels_first(grey).shape == (2, 1, 4, 5)
    moved = channels_first(colour)
    assert moved.shape == (2, 3, 4, 5) and moved.flags.c_contiguous
    assert moved[1, 2, 3, 4] == colour[1, 3, 4, 2]
    assert class_count(np.array([0, 4]), np.array([], dtype=np.int64), np.array([7])) == 8


def test_class_count_is_refused_above_the_limit_before_anything_is_built() -> None:
    with pytest.raises(DataError) as caught:
        class_count(np.array([0, 2**62]), subject="big.npz: labels")
    message = one_line_message(caught)
    assert message.startswith("big.npz: labels") and "IDENTIKIT_LIMIT_CLASSES" in message
    assert class_count(np.array([99_999]), subject="x") == 100_000  # the limit itself is fine
