"""Every registered architecture: output shapes, the tutorial's layers, learning with a seed; and
the training recipe's checks of itself."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
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


# The batch-normalised networks keep running statistics that 24 steps do not settle; they are
# not held to this few-step check (one epoch of the colour CNN on shapes takes ~40 s on 2 cores).
@pytest.mark.parametrize("name", [n for n in ALL if n not in ("colour-cnn", "resnet18")])
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


# Parameters of each architecture for 10 classes and each shape: the softmax and the MLP flatten
# C x H x W, the tutorial CNN sizes its dense layer from H // 4 x W // 4, the colour CNN pools.
PARAMETERS = {
    "softmax": {"1x28x28": 7_850, "1x8x8": 650, "3x32x32": 30_730},
    "mlp": {"1x28x28": 669_706, "1x8x8": 301_066, "3x32x32": 1_841_162},
    "cnn": {"1x28x28": 3_274_634, "1x8x8": 325_514, "3x32x32": 4_259_274},
    "colour-cnn": {"1x28x28": 94_186, "1x8x8": 94_186, "3x32x32": 94_762},
    "resnet18": {"1x28x28": 11_175_370, "1x8x8": 11_175_370, "3x32x32": 11_181_642},
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dims", [(1, 28, 28), (1, 8, 8), (3, 32, 32)])
def test_architectures_take_any_shape(name: str, dims: tuple[int, int, int]) -> None:
    shape = ImageShape(*dims)
    model = build_model(name, 10, shape).eval()
    assert model(torch.rand(4, *dims)).shape == (4, 10)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name][str(shape)]


@pytest.mark.parametrize("name", ["cnn", "colour-cnn"])
def test_convolutional_networks_refuse_images_too_small_in_one_line(name: str) -> None:
    with pytest.raises(IdentikitError, match=rf"'{name}' takes images of at least 4 x 4") as error:
        build_model(name, 10, ImageShape(1, 3, 8))
    assert "\n" not in str(error.value)


# SHA-256 of each architecture's state_dict for 10 classes of MNIST's shape, built after
# torch.manual_seed(0), recorded before the architectures took a shape: they must not change.
ARCHITECTURE_HASHES = {
    "torch": "2.13.0",
    "cnn": "bd04857194d342f04e5d72e83322a06ba59a9a0dac70db9012f1b36e5d73bb25",
    "mlp": "511a35fb9dff577ad726c3ee7dfbd2de0bcb858bc0f6f985c30b02b41f1eaf25",
    "softmax": "d1346597586641a8f7c8cd380f717a4818fa04c3253cbd728bb991ac5e8364e3",
}


@pytest.mark.skipif(
    str(torch.__version__).split("+")[0] != ARCHITECTURE_HASHES["torch"],
    reason="initial weights were recorded with another version of torch",
)
@pytest.mark.parametrize("name", ["cnn", "mlp", "softmax"])
def test_mnist_models_are_initialised_as_before(name: str) -> None:
    torch.manual_seed(0)
    state = build_model(name, 10).state_dict()
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    assert digest.hexdigest() == ARCHITECTURE_HASHES[name]


def test_resnet18_has_the_papers_size_at_imagenets_shape() -> None:
    # 11.7 million parameters for 1,000 classes of 3 x 224 x 224 (He et al. 2016, Table 1's
    # 18-layer network with option-B shortcuts).
    model = build_model("resnet18", 1000, ImageShape(3, 224, 224)).eval()
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # 1 stem + 8 blocks x 2 + 3 projection shortcuts
    assert len(convolutions) == 20
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)
