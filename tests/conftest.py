"""Shared fixtures: tiny synthetic datasets, the real MNIST files, small model files in every
format, finished sweep folders to read or damage, and quicker engine measurements."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from identikit.cli import main
from identikit.data import datasets as data
from identikit.engines import tuning
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.models.export import export_model
from identikit.models.preprocessing import Preprocessing
from identikit.training.trainer import TrainSpec, train
from tests.helpers import report_search_args, search_args, small_model, write_idx_folder

# --- Datasets ---------------------------------------------------------------------------------


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


# --- Model files ------------------------------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """An untrained softmax checkpoint (seed 0) in a temporary folder."""
    return small_model(tmp_path / "tiny.pt")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint as ``tiny_model``, named softmax.pt, once per test module."""
    return small_model(tmp_path_factory.mktemp("model") / "softmax.pt")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny softmax checkpoint, and the same model exported to ONNX and TorchScript."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = build_model("softmax").eval()
    paths = {"checkpoint": folder / "tiny.pt"}
    save_checkpoint(
        paths["checkpoint"], model, architecture="softmax", metadata={"test_accuracy": 0.1}
    )
    for fmt, name in (("onnx", "tiny.onnx"), ("torchscript", "tiny.ts")):
        paths[fmt] = folder / name
        export_model(
            model,
            paths[fmt],
            fmt=fmt,
            preprocessing=Preprocessing(outputs="logits"),
            flatten=False,
            fixed_batch=False,
        )
    return paths


@pytest.fixture(scope="session")
def mnist_softmax(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A softmax model trained for one epoch on the real MNIST (about 90% test accuracy)."""
    path = tmp_path_factory.mktemp("mnist-softmax") / "softmax.pt"
    train(TrainSpec("softmax", epochs=1, root=mnist_root, device="cpu"), out=path, progress=False)
    return path


# --- Finished folders -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep (``sweep``) with a certainty record and a comparison (``cmp``) beside it."""
    root = tmp_path_factory.mktemp("finished")
    code = main([*search_args(model_file, root / "sweep")])
    assert code == 0
    (root / "certainty.json").write_text(
        json.dumps(
            {
                "blank": {
                    "n": 1,
                    "mean": 0.1,
                    "median": 0.1,
                    "above_0.6": 0,
                    "above_0.9": 0,
                    "above_0.99": 0,
                }
            }
        )
    )
    (root / "cmp").mkdir()
    (root / "cmp" / "compare.json").write_text(
        json.dumps(
            {
                "square": {
                    "success": {"0.99": 1.0, "0.999": 0.5, "0.9999": 0.0},
                    "median_queries": {"0.99": 40, "0.999": 90, "0.9999": None},
                    "seconds": 1.5,
                }
            }
        )
    )
    return root


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    """A fresh copy of the finished folder, to damage."""
    target = tmp_path / "copy"
    shutil.copytree(finished, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def swept(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with its model file and one finished sweep of it."""
    root = tmp_path_factory.mktemp("swept")
    shutil.copy(model_file, root / "softmax.pt")
    assert main(report_search_args(root / "softmax.pt", root / "sweep", "--candidates", "20")) == 0
    return root


@pytest.fixture
def folder(swept: Path, tmp_path: Path) -> Path:
    """A fresh copy of the swept folder, to add to."""
    return Path(shutil.copytree(swept, tmp_path / "folder"))


# --- Scoring engines --------------------------------------------------------------------------


@pytest.fixture
def quick_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter timings, for tests that check what is chosen, said or kept, not the speeds."""
    monkeypatch.setattr(tuning, "MEASURE_SECONDS", 0.02)
    monkeypatch.setattr(tuning, "ROUNDS", 1)


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """Whatever a test's choice does to PyTorch's thread count is undone for the next test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
