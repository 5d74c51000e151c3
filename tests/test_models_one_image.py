"""Models that take a batch of exactly one image: found when loaded, run one image at a time by
every caller (scores, gradients, the command line), batch-norm statistics refused in one line;
and the real quantized MobileNetV2, which is such a model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.engines.options import EngineOptions
from identikit.models.export import onnx_bytes
from identikit.models.info import Expected, ModelInfo
from identikit.models.one_image import OneImageAtATime
from identikit.models.preprocessing import Preprocessing
from tests.helpers import run_main

SHAPE = ImageShape(3, 8, 8)
ONE_AT_A_TIME = "takes a batch of 1 only"
MOBILENET = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "real-models"
    / "imagenet"
    / "mobilenet-v2-quantized.torchscript.pt"
)


class Flattened(nn.Module):
    """A small network whose features are reshaped to one row, ``reshape(1, -1)``, as the
    quantized MobileNetV2 does: two images make a row twice as long, which its last layer
    refuses."""

    def __init__(self, *, batch_norm: bool = False) -> None:
        super().__init__()
        with torch.random.fork_rng():  # the same weights every time, the tests' seed untouched
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 5)
        self.norm = nn.BatchNorm2d(4) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.norm(self.conv(x))
        logits: torch.Tensor = self.fc(torch.relu(features).reshape(1, -1))
        return logits


def traced(path: Path) -> Path:
    """:class:`Flattened`, traced for a batch of 1 and saved as TorchScript at ``path``."""
    module = Flattened().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation
        script = torch.jit.trace(module, torch.rand(1, *SHAPE.dims))  # type: ignore[no-untyped-call]
        torch.jit.save(script, str(path))
    return path


def read_script(path: Path) -> nn.Module:
    """The TorchScript file at ``path``, read directly (what identikit's loading is checked
    against)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation
        module: nn.Module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    return module.eval()


def load(path: Path, told: list[str]) -> Classifier:
    return load_classifier(
        path,
        device="cpu",
        expect=Expected(input_shape=SHAPE),
        engine=EngineOptions(log=told.append),
        trust_code=True,
    )


def alone(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``module``'s log-probabilities for each image run alone."""
    with torch.no_grad():
        return torch.cat([module(image[None]) for image in images]).log_softmax(1)


def test_a_torchscript_model_of_batch_one_scores_a_batch_as_each_image_alone(
    tmp_path: Path,
) -> None:
    path = traced(tmp_path / "one.pt")
    script = read_script(path)
    with pytest.raises(RuntimeError):
        script(torch.rand(2, *SHAPE.dims))  # the file itself takes no batch of 2
    told: list[str] = []
    classifier = load(path, told)
    assert [line for line in told if ONE_AT_A_TIME in line] == [
        "one.pt: takes a batch of 1 only (it fails on several images at once and runs on each "
        "alone); identikit runs it one image at a time"
    ]
    assert classifier.one_image_at_a_time and classifier.num_classes == 5
    images = torch.rand(5, *SHAPE.dims, generator=torch.Generator().manual_seed(1))
    expected = alone(script, images)
    assert torch.allclose(classifier.log_probabilities(images), expected, atol=1e-6)
    assert torch.allclose(classifier.score(images), expected, atol=1e-6)
    singles = torch.cat([classifier.log_probabilities(image[None]) for image in images])
    assert torch.allclose(classifier.log_probabilities(images), singles, atol=1e-6)
    assert classifier.queries == 5 + 5 + 5 + 5


def test_gradients_of_a_batch_one_model_are_each_image_alone() -> None:
    module = Flattened().eval()
    classifier = Classifier(module, ModelInfo(name="flat", input_shape=SHAPE))
    assert classifier.one_image_at_a_time
    assert classifier.gradients_by == "PyTorch (fp32, eager, one image at a time, on cpu)"
    images = torch.rand(4, *SHAPE.dims, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 3])

    def objective(x: torch.Tensor, log_p: torch.Tensor, rows: slice) -> torch.Tensor:
        return log_p.gather(1, targets[rows].view(-1, 1)).squeeze(1)

    values, grads = classifier.value_and_grad(images, objective)
    for i, image in enumerate(images):
        x = image[None].clone().requires_grad_(True)
        value = module(x).log_softmax(1)[0, targets[i]]
        (grad,) = torch.autograd.grad(value, x)
        assert torch.allclose(values[i], value.detach(), atol=1e-6)
        assert torch.allclose(grads[i], grad[0], atol=1e-6)


def test_batch_norm_statistics_of_a_batch_one_model_are_refused_in_one_line() -> None:
    info = ModelInfo(name="bn.pt", input_shape=SHAPE)
    classifier = Classifier(Flattened(batch_norm=True).eval(), info)
    assert classifier.one_image_at_a_time
    for ask in (
        classifier.batch_norm_layers,
        lambda: classifier.value_and_grad_with_statistics(
            torch.rand(2, *SHAPE.dims), lambda x, log_p, rows: log_p[:, 0], 1.0
        ),
    ):
        with pytest.raises(IdentikitError) as error:
            ask()
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith("bn.pt takes a batch of 1 only, and batch-norm statistics need")


def test_only_a_model_that_runs_on_one_image_is_run_one_image_at_a_time() -> None:
    """Given images of another shape the same model fails alone too: its error is the one it
    had, and nothing is said of a batch of 1."""
    told: list[str] = []
    options = EngineOptions(log=told.append)
    with pytest.raises(IdentikitError) as error:  # made for 3 x 8 x 8, given MNIST's shape
        Classifier(Flattened().eval(), ModelInfo(name="f.pt"), engine=options)
    assert str(error.value).startswith(
        "f.pt fails on images of shape (N, 1, 28, 28) (--input-shape C,H,W gives another): "
    )
    assert told == []
    classifier = Classifier(
        Flattened().eval(), ModelInfo(name="f.pt", input_shape=SHAPE), engine=options
    )
    assert classifier.one_image_at_a_time and len(told) == 1 and ONE_AT_A_TIME in told[0]


def test_one_image_at_a_time_is_not_traced_into_a_fixed_batch() -> None:
    """An export would unroll the loop to the example's batch: refused in one line, which the
    ONNX engine reads as that engine being unavailable."""
    with pytest.raises(IdentikitError, match="batch of 1 only is run one image at a time"):
        onnx_bytes(OneImageAtATime(Flattened().eval()), torch.rand(2, *SHAPE.dims))


def test_evaluate_runs_a_batch_one_torchscript_model_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = traced(tmp_path / "one.pt")
    script = read_script(path)
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (30, 8, 8, 3), dtype=torch.uint8, generator=generator)
    pixels = images.permute(0, 3, 1, 2).float().div(255)
    labels = alone(script, pixels).argmax(1)  # the model's own calls: its accuracy is 1
    labels[:4] = (labels[:4] + 1) % 5  # but for these 4 of 30
    data = tmp_path / "set.npz"
    train, test = (images[:6].numpy(), labels[:6].numpy()), (images.numpy(), labels.numpy())
    np.savez(data, images=train[0], labels=train[1], test_images=test[0], test_labels=test[1])
    code, out, err = run_main(
        capsys, "evaluate", "--model", str(path), "--trust-code", "--input-shape", "3,8,8",
        "--dataset", f"npz:{data}", "--json", "--backend", "eager", "--chunk-size", "64",
        "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "one.pt: takes a batch of 1 only" in err and "one image at a time" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["images"] == 30 and result["accuracy"] == pytest.approx(26 / 30)


@pytest.mark.skipif(
    not MOBILENET.is_file(), reason="the shared real models (../shared/real-models) are not here"
)
def test_the_real_quantized_mobilenet_v2_loads_and_scores_as_each_image_alone() -> None:
    """The published quantized MobileNetV2 (a batch of 1) loads without help; its scores on real
    ImageNet images are the file's own, run image by image, and it calls 85% of the 100 their
    class (top-1, as measured when it was shared)."""
    sample = np.load(MOBILENET.parent / "sample-100.npz")
    pixels = torch.from_numpy(sample["images"]).float().div(255).permute(0, 3, 1, 2)
    labels = torch.from_numpy(sample["labels"]).long()
    normal = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    told: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors' deprecation
        classifier = load_classifier(
            MOBILENET,
            device="cpu",
            preprocessing=normal,
            expect=Expected(input_shape=ImageShape(3, 224, 224)),
            engine=EngineOptions(log=told.append),
            trust_code=True,
        )
        script = read_script(MOBILENET)
        log_p = classifier.log_probabilities(pixels)
        own = alone(script, normal.to_model(pixels[::5]))  # every 5th: the file's own
    assert any(ONE_AT_A_TIME in line for line in told)
    assert classifier.num_classes == 1000
    assert torch.allclose(log_p[::5], own, atol=1e-5)
    calls = log_p.argmax(1)
    assert (calls == labels).float().mean().item() == pytest.approx(0.85)
