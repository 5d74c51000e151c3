"""Shared fixtures: tiny synthetic IDX datasets and the real MNIST files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from identikit.data import datasets as data
from tests.helpers import small_model, write_idx_folder


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
    """An untrained softmax checkpoint (seed 0) in a temporary folder."""
    return small_model(tmp_path / "tiny.pt")


@pytest.fixture(scope="session")
def mnist_softmax(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A softmax model trained for one epoch on the real MNIST (about 90% test accuracy)."""
    from identikit.training.trainer import train

    path = tmp_path_factory.mktemp("mnist-softmax") / "softmax.pt"
    train("softmax", epochs=1, root=mnist_root, out=path, progress=False)
    return path
