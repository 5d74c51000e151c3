"""Every registered architecture: output shapes, the tutorial's layers, learning with a seed; and
the training recipe's checks of itself."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.models import ARCHITECTURES, build_model
from identikit.models.training_config import TrainConfig
from identikit.training.evaluation import evaluate
from identikit.training.fitting import FitHooks, fit
from tests.helpers import NAN, make_digits

ALL = sorted(ARCHITECTURES)


QUIET = FitHooks(progress=False)


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
    losses = fit(model, images, labels, TrainConfig(epochs=3, batch_size=32, lr=3e-3), hooks=QUIET)
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
            hooks=QUIET,
        )
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"lr": NAN}, "--lr"),
        ({"lr": -1.0}, "--lr"),
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"epochs": 1.5}, "--epochs"),
    ],
)
def test_train_config_checks_itself(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(IdentikitError, match=named):
        TrainConfig(**settings)
