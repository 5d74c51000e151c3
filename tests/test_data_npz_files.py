"""npz:FILE datasets: real archives written here, every layout and every bad one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.npz_files import load_npz_images
from tests.helpers import one_line_message


def _write(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def _colour(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.integers(0, 256, (n, 5, 7, 3), dtype=np.uint8),
        "labels": np.arange(n) % 3,
    }


def test_colour_images_are_moved_channel_first_and_split(tmp_path: Path) -> None:
    arrays = _colour()
    data = load_npz_images(_write(tmp_path / "colour.npz", **arrays))
    assert data.shape == ImageShape(3, 5, 7) and data.name == f"npz:{tmp_path / 'colour.npz'}"
    assert data.class_names == ("0", "1", "2")
    assert len(data.train_images) == 10 and len(data.test_images) == 2
    # Every image arrives, channel-first, with its own label.
    back = np.concatenate([data.train_images, data.test_images]).transpose(0, 2, 3, 1)
    labels = np.concatenate([data.train_labels, data.test_labels])
    for image, label in zip(back, labels, strict=True):
        (index,) = [i for i, original in enumerate(arrays["images"]) if (original == image).all()]
        assert arrays["labels"][index] == label
    again = load_npz_images(tmp_path / "colour.npz")
    np.testing.assert_array_equal(again.test_images, data.test_images)


def test_grey_images_with_a_test_split_and_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = _write(
        tmp_path / "grey.npz",
        images=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8),
        labels=np.array([0, 1, 0, 1], dtype=np.uint8),
        test_images=rng.integers(0, 256, (2, 8, 8), dtype=np.uint8),
        test_labels=np.array([1, 2], dtype=np.int32),
        class_names=np.array(["cat", "dog", "eel"]),
    )
    data = load_npz_images(path, name="mine")
    assert data.shape == ImageShape(1, 8, 8) and data.name == "mine"
    assert data.class_names == ("cat", "dog", "eel") and data.classes == 3
    assert data.test_labels.tolist() == [1, 2] and data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_images[:, 0], np.load(path)["images"])


def _bad(name: str) -> dict[str, Any]:
    """A valid archive's arrays with one thing wrong, by name."""
    good = _colour()
    grey = np.zeros((2, 5, 7), dtype=np.uint8)
    changes: dict[str, dict[str, Any]] = {
        "float images": {"images": good["images"].astype(np.float32)},
        "flat images": {"images": good["images"].reshape(12, -1)},
        "channels first": {"images": np.zeros((12, 3, 32, 32), dtype=np.uint8)},
        "float labels": {"labels": good["labels"].astype(np.float64)},
        "label count": {"labels": good["labels"][:11]},
        "no labels": {"labels": None},
        "stray array": {"extra": np.zeros(3)},
        "half a test split": {"test_images": grey},
        "test size": {
            "test_images": np.zeros((2, 5, 6, 3), dtype=np.uint8),
            "test_labels": np.array([0, 1]),
        },
        "few names": {"class_names": np.array(["a", "b"])},
        "numeric names": {"class_names": np.array([1, 2, 3])},
        "one class": {"labels": np.zeros(12, dtype=np.int64)},
        # One label of 2**62 once asked for 2**62 class names: a MemoryError after 34 s.
        "huge label": {"labels": np.array([0] * 11 + [2**62], dtype=np.int64)},
        "many names": {"class_names": np.array([str(n) for n in range(100_001)])},
        # An empty test split once scored "accuracy 0.00%" in evaluate.
        "empty test split": {
            "test_images": np.zeros((0, 5, 7, 3), dtype=np.uint8),
            "test_labels": np.zeros(0, dtype=np.int64),
        },
        "no images": {
            "images": np.zeros((0, 5, 7, 3), dtype=np.uint8),
            "labels": np.zeros(0, dtype=np.int64),
        },
    }
    arrays = {**good, **changes[name]}
    return {key: value for key, value in arrays.items() if value is not None}


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("float images", "must be uint8"),
        ("flat images", "expected N x H x W or N x H x W x C"),
        ("channels first", "looks channels-first"),
        ("float labels", "labels must be integers"),
        ("label count", "12 images but 11 labels"),
        ("no labels", "lacks labels"),
        ("stray array", "unknown arrays ['extra']"),
        ("half a test split", "come together"),
        ("test size", "test_images are 5x6x3 but images are 5x7x3"),
        ("few names", "2 class_names but labels reach 2"),
        ("numeric names", "list of strings"),
        ("one class", "at least two"),
        ("huge label", "4,611,686,018,427,387,905 classes is over the limit"),
        ("many names", "class_names (up to 100,000): 100,001 classes is over the limit"),
        ("empty test split", "test_images holds no images"),
        ("no images", "images holds no images"),
    ],
)
def test_a_bad_archive_is_one_line_naming_it(tmp_path: Path, name: str, fragment: str) -> None:
    path = _write(tmp_path / "bad.npz", **_bad(name))
    with pytest.raises(DataError) as caught:
        load_npz_images(path)
    message = one_line_message(caught)
    assert str(path) in message and fragment in message


def test_pickles_and_non_archives_are_refused(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([None, 1], dtype=object), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="Python objects"):
        load_npz_images(objects)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"not an \.npz archive"):
        load_npz_images(tmp_path / "text.npz")
    with pytest.raises(DataError, match="not found"):
        load_npz_images(tmp_path / "absent.npz")
