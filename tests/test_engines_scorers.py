"""Every scoring engine gives eager PyTorch's probabilities, for checkpoints and for TorchScript
models with preprocessing."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.classifier import Classifier, load_classifier
from identikit.data import datasets as data
from identikit.engines import tuning
from identikit.engines.options import EngineOptions
from identikit.models.preprocessing import Preprocessing
from tests.helpers import needs_cuda, trained_like_cnn

pytestmark = pytest.mark.usefixtures("quick_measurements")


@pytest.fixture(scope="module")
def real_and_random() -> torch.Tensor:
    """300 MNIST test digits and 100 uniform-noise images, as pixels in [0, 1]."""
    images, _ = data.load_dataset("mnist", "test")
    real = torch.from_numpy(images[:300].astype(np.float32) / 255.0).unsqueeze(1)
    noise = torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return torch.cat([real, noise])


# Every engine on the CPU; on a GPU, those that run there (ONNX Runtime runs on the CPU).
ENGINES_BY_DEVICE = [
    *[(backend, "cpu") for backend in ("eager", "channels_last", "compile", "onnx")],
    *[pytest.param(b, "cuda", marks=needs_cuda) for b in ("eager", "channels_last", "compile")],
]


@pytest.mark.parametrize(("backend", "device"), ENGINES_BY_DEVICE)
def test_every_backend_gives_eager_probabilities(
    backend: str, device: str, real_and_random: torch.Tensor, tmp_path: Path
) -> None:
    model = trained_like_cnn().to(device)
    reference = copy.deepcopy(model)  # as it was: a Classifier may change the module's layout
    images = real_and_random.to(device)
    # First: a Classifier on a GPU turns TF32 off, and eager's reference must not use it either.
    classifier = Classifier(
        model,
        device=device,
        engine=EngineOptions(backend=backend, chunk_size=64, cache_dir=tmp_path),
    )
    with torch.inference_mode():
        eager = torch.softmax(reference(images), dim=1)
        # Eager PyTorch in the engines' chunks: how far it moves from itself with the batch size
        # on this device, which the tuner's tolerance allows for (tuning.tolerance).
        parts = [reference(x) for x in torch.split(images, 64)]
        chunked = torch.softmax(torch.cat(parts), dim=1)
    allowed = max(tuning.TOLERANCE, 2 * (chunked - eager).abs().max().item())
    assert classifier.choice.backend == backend and classifier.choice.how == "given"
    assert classifier.scorer.backend == backend
    probabilities = classifier.probabilities(images)
    assert (probabilities - eager).abs().max().item() <= allowed
    # the model is confident on some images and not on others: the comparison means something
    assert probabilities.max(1).values.max() > 0.99 and probabilities.max(1).values.min() < 0.9


@pytest.mark.parametrize("backend", ["eager", "channels_last", "onnx"])
def test_torchscript_backends_with_preprocessing(
    backend: str, real_and_random: torch.Tensor, tmp_path: Path
) -> None:
    """A TorchScript model that expects normalised inputs, under every engine that takes it."""
    model = trained_like_cnn(1)
    preprocessing = Preprocessing(input_range="-1,1", mean=0.1, std=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(model, torch.rand(2, 1, 28, 28))  # type: ignore[no-untyped-call]
    path = tmp_path / "model.ts"
    torch.jit.save(scripted, str(path))
    with torch.inference_mode():
        eager = torch.softmax(model(preprocessing.to_model(real_and_random)), dim=1)
    classifier = load_classifier(
        path,
        device="cpu",
        preprocessing=preprocessing,
        trust_code=True,
        engine=EngineOptions(backend=backend, chunk_size=100),
    )
    assert (classifier.probabilities(real_and_random) - eager).abs().max().item() <= 1e-5
