"""load_images: one name for every dataset, each spec reaching its reader, and the IDX
datasets as (N, 1, H, W) images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data import datasets as data
from identikit.data.images import known_specs, load_images
from tests.helpers import one_line_message, write_idx_folder


def test_an_idx_dataset_gains_its_channel_axis(tiny_dataset: Path) -> None:
    images = load_images("tiny", root=tiny_dataset.parent)
    train, labels = data.load_dataset("tiny", "train", tiny_dataset.parent)
    assert images.shape == data.MNIST_SHAPE and images.name == "tiny"
    assert images.train_images.shape == data.MNIST_SHAPE.batch(len(train))
    np.testing.assert_array_equal(images.train_images[:, 0], train)
    assert images.train_labels.dtype == np.int64 and images.train_labels.tolist() == labels.tolist()
    assert len(images.test_images) == 100 and images.class_names == tuple("0123456789")


@pytest.mark.mnist
def test_real_mnist_as_an_image_set(mnist_root: Path) -> None:
    images = load_images("mnist", root=mnist_root)
    assert images.train_images.shape == data.MNIST_SHAPE.batch(60_000)
    assert images.test_images.shape == data.MNIST_SHAPE.batch(10_000)
    assert np.bincount(images.test_labels).tolist()[:2] == [980, 1135]


def test_an_idx_folder_by_its_spec(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "idx", train=30, test=10)
    images = load_images(f"idx:{folder}")
    assert images.name == f"idx:{folder}" and len(images.train_images) == 30
    assert images.shape == data.MNIST_SHAPE


def test_file_specs_reach_their_readers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = tmp_path / "set.npz"
    np.savez(
        archive, images=rng.integers(0, 256, (12, 3, 5), dtype=np.uint8), labels=np.arange(12) % 2
    )
    from_npz = load_images(f"npz:{archive}")
    assert from_npz.shape == ImageShape(1, 3, 5) and from_npz.name == f"npz:{archive}"
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (4, 4), (i, 50, 100)).save(tmp_path / "pics" / name / f"{i}.png")
    assert load_images(f"folder:{tmp_path / 'pics'}").shape == ImageShape(3, 4, 4)
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_images(f"cifar10:{tmp_path}")


def test_shapes_and_its_seeds() -> None:
    assert load_images("shapes").name == "shapes"
    seeded = load_images("shapes:7")
    assert seeded.name == "shapes:7" and seeded.shape == ImageShape(3, 32, 32)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn")
def test_the_sklearn_digits_by_name() -> None:
    assert load_images("sklearn-digits").shape == ImageShape(1, 8, 8)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("cifar100:x", "unknown dataset 'cifar100:x'"),
        ("imagenet", "known: mnist, fashion-mnist"),
        ("npz:", "names no file: write npz:FILE"),
        ("folder:", "names no dir"),
        ("shapes:seven", "the seed must be a whole number"),
        ("shapes:-1", "must not be negative"),
        ("idx:/nonexistent/idx", "/nonexistent/idx"),
    ],
)
def test_bad_specs_are_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(DataError) as caught:
        load_images(spec)
    assert fragment in one_line_message(caught)


def test_every_spec_form_is_listed() -> None:
    prefixes = {spec.partition(":")[0] for spec in known_specs()}
    assert prefixes >= {"mnist", "npz", "folder", "cifar10", "idx", "shapes", "sklearn-digits"}
