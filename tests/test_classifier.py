"""The Classifier: the query meter, its two scoring paths, gradients, the probe of a model's outputs
and classes, and the default engine."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.classifier.engine_choice import CPU_CHUNK, place
from identikit.classifier.probe import describe, probe_pixels
from identikit.data import datasets as data
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.info import Expected, ModelInfo
from identikit.models.preprocessing import Preprocessing
from identikit.strategies import (
    Budget,
    advance,
    initial_state,
    make_strategy,
)
from tests.helpers import softmax_model, toy_linear


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """The first 50 MNIST test digits as pixels in [0, 1], (50, 1, 28, 28)."""
    images, _ = data.load_dataset("mnist", "test")
    return torch.from_numpy(images[:50].astype(np.float32) / 255.0).unsqueeze(1)


class Probabilities(nn.Module):
    """A linear model that returns probabilities (a softmax layer at its end)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = toy_linear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x), dim=1)


class LogProbabilities(Probabilities):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.inner(x), dim=1)


@pytest.mark.mnist
def test_the_query_meter_counts_every_image_in_every_chunk(digits: torch.Tensor) -> None:
    classifier = Classifier(softmax_model(), engine=EngineOptions(chunk_size=7))
    assert classifier.queries == 0  # probing the model is not a query
    classifier.log_probabilities(digits)  # 50 images in chunks of 7
    classifier.score(digits[:13])
    classifier.probabilities(digits[:1])
    classifier.log_probabilities(digits[:0])
    assert classifier.queries == 50 + 13 + 1

    def target_class(x: torch.Tensor, log_p: torch.Tensor, rows: slice) -> torch.Tensor:
        return log_p[:, 3]

    classifier.value_and_grad(digits[:20], target_class)
    assert classifier.queries == 50 + 13 + 1 + 20


@pytest.mark.mnist
def test_score_and_log_probabilities_agree_in_fp32(digits: torch.Tensor) -> None:
    model = build_model("cnn")
    classifier = Classifier(model)
    assert classifier.exact_scorer is classifier.ranking_scorer and not classifier.rescores
    exact = classifier.log_probabilities(digits)
    assert torch.equal(classifier.score(digits), exact)
    with torch.inference_mode():
        eager = torch.log_softmax(model(digits), dim=1)
    torch.testing.assert_close(exact, eager, rtol=0, atol=1e-5)
    torch.testing.assert_close(exact.exp().sum(1), torch.ones(50), rtol=0, atol=1e-5)


@pytest.mark.mnist
def test_value_and_grad_matches_autograd(digits: torch.Tensor) -> None:
    model = softmax_model(seed=1)
    classifier = Classifier(model, engine=EngineOptions(chunk_size=16))
    targets = torch.arange(len(digits)) % 10

    def confidence(x: torch.Tensor, log_p: torch.Tensor, rows: slice) -> torch.Tensor:
        return log_p.gather(1, targets[rows].view(-1, 1)).squeeze(1) - 0.1 * x.flatten(1).sum(1)

    values, grads = classifier.value_and_grad(digits, confidence)
    x = digits.clone().requires_grad_(True)
    expected = confidence(x, torch.log_softmax(model(x), dim=1), slice(0, len(digits)))
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(values, expected.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(grads, expected_grad, rtol=0, atol=1e-5)
    assert grads.shape == digits.shape


def test_torchscript_gradient_search_prints_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "traced.pt"
    traced = torch.jit.trace(softmax_model(), torch.rand(2, 1, 28, 28))  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier = load_classifier(
            path,
            trust_code=True,
            device="cpu",
            engine=EngineOptions(backend="eager", chunk_size=64),
        )
        state = initial_state(classifier, [0, 1], [1, 2])
        advance(state, make_strategy("gradient"), classifier, [Budget(20)])
    leaf = [w for w in caught if re.search("not a leaf", str(w.message))]
    assert not leaf, leaf[0].message


def test_images_of_another_shape_are_refused() -> None:
    classifier = Classifier(toy_linear())
    with pytest.raises(IdentikitError, match=r"expected images of shape \(N, 1, 28, 28\)"):
        classifier.log_probabilities(torch.rand(2, 28, 28))
    with pytest.raises(IdentikitError, match=r"got \(2, 3, 28, 28\)"):
        classifier.score(torch.rand(2, 3, 28, 28))


def test_the_classes_and_class_names_are_checked() -> None:
    with pytest.raises(IdentikitError, match=r"m\.pt returns 10 classes, expected 7"):
        Classifier(toy_linear(), ModelInfo(name="m.pt", classes=7))
    with pytest.raises(IdentikitError, match=r"3 class names \(--class-names.* of 10 classes"):
        Classifier(toy_linear(), ModelInfo(class_names=("a", "b", "c")))
    with pytest.raises(IdentikitError, match="--classes must be at least 2, got 1"):
        Expected(classes=1)
    named = Classifier(toy_linear(), ModelInfo(classes=10, class_names=tuple("abcdefghij")))
    assert named.class_names == list("abcdefghij") and named.num_classes == 10
    plain = Classifier(toy_linear())
    assert plain.class_names == [str(c) for c in range(10)]
    assert plain.info.classes == 10 and plain.name == "model" and plain.sha256 is None


def test_wrong_number_of_classes_is_a_clear_error() -> None:
    with pytest.raises(IdentikitError, match="returns 10 classes, expected 7"):
        Classifier(toy_linear(), ModelInfo(name="m.pt", classes=7))

    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).sum(1)

    with pytest.raises(IdentikitError, match=r"shape \(N, classes\)"):
        Classifier(Flat())


KINDS: dict[str, Callable[[], nn.Module]] = {
    "logits": toy_linear,
    "probabilities": Probabilities,
    "log-probabilities": LogProbabilities,
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_probe_detects_the_kind_of_outputs(kind: str) -> None:
    model = KINDS[kind]()
    placed = place(model, torch.device("cpu"))
    info = describe(placed.forward, ModelInfo(name="m"), placed.device)
    assert info.outputs == kind and info.outputs_detected and info.classes == 10
    classifier = Classifier(model)
    assert classifier.outputs == kind and classifier.detected_outputs
    # Every kind of outputs gives the same log-probabilities.
    images = probe_pixels(MNIST_SHAPE, 6, seed=3)
    with torch.inference_mode():
        expected = torch.log_softmax(toy_linear()(images), dim=1)
    torch.testing.assert_close(classifier.log_probabilities(images), expected, rtol=0, atol=1e-5)


def test_outputs_given_are_not_detected() -> None:
    given = ModelInfo(preprocessing=Preprocessing(outputs="logits"))
    classifier = Classifier(Probabilities(), given)
    assert classifier.outputs == "logits" and not classifier.detected_outputs


def test_the_probe_refuses_what_is_no_classifier() -> None:
    class Failing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore")

    class OneScore(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).sum(1, keepdim=True)

    with pytest.raises(IdentikitError) as error:
        Classifier(Failing(), ModelInfo(name="f.pt"))
    assert str(error.value) == (
        "f.pt fails on images of shape (N, 1, 28, 28) (--input-shape C,H,W gives another): "
        "mat1 and mat2 shapes cannot be multiplied"
    )
    with pytest.raises(IdentikitError, match=r"expected outputs of shape \(N, classes\)"):
        Classifier(OneScore())


def test_default_engine_options_give_the_channels_last_cpu_scorer() -> None:
    classifier = Classifier(build_model("cnn"))
    choice = classifier.choice
    assert (choice.backend, choice.precision, choice.chunk_size, choice.how) == (
        "channels_last",
        "fp32",
        CPU_CHUNK,
        "default",
    )
    assert classifier.ranking_scorer.backend == "channels_last" and classifier.chunk_size == 128
    assert classifier.device == torch.device("cpu") and classifier.precision == "fp32"
    assert classifier.torch_module is not None
    conv = classifier.torch_module.get_parameter("conv1.weight")
    assert conv.is_contiguous(memory_format=torch.channels_last)
    given = Classifier(build_model("cnn"), engine=EngineOptions(chunk_size=32))
    assert given.chunk_size == 32 and given.choice.how == "default"


def test_a_mean_per_channel_must_fit_the_channels() -> None:
    per_channel = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    with pytest.raises(IdentikitError, match=r"--mean has 3 values.*\(1x28x28\) have 1 channel"):
        Classifier(build_model("softmax"), ModelInfo(preprocessing=per_channel))
    shape = ImageShape(3, 8, 8)
    model = build_model("softmax", 10, shape)
    classifier = Classifier(model, ModelInfo(preprocessing=per_channel, input_shape=shape))
    images = torch.rand(4, *shape.dims)
    with torch.no_grad():
        expected = model(per_channel.to_model(images)).log_softmax(1)
    assert torch.allclose(classifier.log_probabilities(images), expected, atol=1e-6)
