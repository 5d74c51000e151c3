"""Every registered architecture: shapes, learning, checkpoints."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.base.errors import CheckpointError
from identikit.models import ARCHITECTURES, build_model
from identikit.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from identikit.models.training_config import TrainConfig
from identikit.training.trainer import evaluate, fit
from tests.helpers import make_digits

ALL = sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("classes", [10, 3])
def test_output_shape(name: str, classes: int) -> None:
    model = build_model(name, classes).eval()
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, classes)


def test_cnn_layers_match_the_tutorial() -> None:
    shapes = {k: tuple(v.shape) for k, v in build_model("cnn").state_dict().items()}
    assert shapes["conv1.weight"] == (32, 1, 5, 5)
    assert shapes["conv2.weight"] == (64, 32, 5, 5)
    assert shapes["fc1.weight"] == (1024, 3136)
    assert shapes["fc2.weight"] == (10, 1024)
    assert tuple(build_model("softmax").state_dict()["linear.weight"].shape) == (10, 784)


@pytest.mark.parametrize("name", ALL)
def test_training_lowers_the_loss_and_learns(name: str) -> None:
    images, labels = make_digits(256)
    torch.manual_seed(0)
    model = build_model(name)
    before = evaluate(model, images, labels).accuracy
    losses = fit(
        model, images, labels, TrainConfig(epochs=3, batch_size=32, lr=3e-3), progress=False
    )
    assert losses[-1] < losses[0]
    after = evaluate(model, images, labels)
    assert after.accuracy > max(before, 0.9)
    assert np.array(after.confusion).sum() == 256


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_weights(name: str) -> None:
    images, labels = make_digits(64)
    weights = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_model(name)
        fit(
            model,
            images,
            labels,
            TrainConfig(epochs=1, batch_size=16, lr=1e-3),
            seed=3,
            progress=False,
        )
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = build_model(name).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, architecture=name, metadata={"test_accuracy": 0.5, "seed": 1})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert meta["architecture"] == name and meta["test_accuracy"] == 0.5
    assert isinstance(load_model(path), torch.nn.Module)
    torch.load(path, weights_only=True)  # loads without unpickling code


def _save_payload(path: Path, payload: object) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch EXPLOITED",))


def test_pickled_code_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    _save_payload(path, {"format": "identikit-checkpoint", "payload": _Exploit()})
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "EXPLOITED").exists()
    path.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "EXPLOITED").exists()


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    model = build_model("softmax")
    state = model.state_dict()
    cases = {
        "missing.pt": None,
        "random.pt": os.urandom(4096),
        "empty.pt": b"",
    }
    for name, blob in cases.items():
        if blob is not None:
            (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    base = {"format": "identikit-checkpoint", "version": 1, "num_classes": 10, "metadata": {}}
    _save_payload(tmp_path / "arch.pt", {**base, "architecture": "resnet", "state_dict": state})
    with pytest.raises(CheckpointError, match="unknown model architecture 'resnet'"):
        load_checkpoint(tmp_path / "arch.pt")
    _save_payload(tmp_path / "shape.pt", {**base, "architecture": "cnn", "state_dict": state})
    with pytest.raises(CheckpointError, match="do not fit architecture 'cnn'"):
        load_checkpoint(tmp_path / "shape.pt")
    _save_payload(tmp_path / "plain.pt", state)
    with pytest.raises(CheckpointError, match="not an identikit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
