"""Shared fixtures: tiny synthetic IDX datasets and the real MNIST files."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit import data
from identikit.idx import encode_idx
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint


def make_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 28x28 uint8 'digits': class k is a bright bar at row 2k+4, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images, labels


def write_idx_folder(folder: Path, train: int = 200, test: int = 100, *, gz: bool = False) -> Path:
    """Write the four MNIST-named IDX files of a synthetic dataset into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = make_digits(n, seed)
        for name, array in zip(data._MNIST_FILES[split], (images, labels), strict=True):
            blob = encode_idx(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
    return folder


@pytest.fixture
def tiny_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registered dataset 'tiny' (MNIST file names, no checksums) in a temporary folder."""
    root = write_idx_folder(tmp_path / "tiny")
    spec = data.DatasetSpec(name="tiny", files=data._MNIST_FILES, class_names=tuple("0123456789"))
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    yield root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding the real MNIST files, fetched on first use."""
    paths = data.ensure_files("mnist")
    return next(iter(paths.values())).parent


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("softmax")
    with torch.no_grad():
        model.linear.weight.normal_(0, 0.05)
        model.linear.bias.zero_()
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, architecture="softmax", metadata={"test_accuracy": 0.1})
    return path


@pytest.fixture(scope="session")
def mnist_softmax(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A softmax model trained for one epoch on the real MNIST (about 90% test accuracy)."""
    from identikit.training import train

    path = tmp_path_factory.mktemp("mnist-softmax") / "softmax.pt"
    train("softmax", epochs=1, root=mnist_root, out=path, progress=False)
    return path
