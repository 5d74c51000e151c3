"""ONNX models whose outputs are not (N, classes) are refused in one line, in the library and at the
command line; the shape and layout of the images an ONNX input takes, read from its static
dimensions or given where they are dynamic."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines.options import EngineOptions
from identikit.models.export import export_model
from identikit.models.info import Expected
from identikit.models.onnx_model import detect_layout, onnx_input
from identikit.models.preprocessing import Preprocessing
from tests.helpers import export_onnx, one_line_message

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


class Reshaped(nn.Module):
    """A linear model whose (N, 10) outputs come back reshaped by ``how``."""

    def __init__(self, how: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.how(self.linear(x.flatten(1)))


def with_a_dimension(out: torch.Tensor) -> torch.Tensor:
    return out.unsqueeze(-1)


def flattened(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(-1)


@pytest.mark.parametrize(("how", "shape"), [(with_a_dimension, "(4, 10, 1)"), (flattened, "(40)")])
def test_onnx_outputs_of_another_rank_are_refused(
    how: Callable[[torch.Tensor], torch.Tensor], shape: str, tmp_path: Path
) -> None:
    path = export_onnx(Reshaped(how), tmp_path / "model.onnx")
    with pytest.raises(IdentikitError) as error:
        load_classifier(path, device="cpu")
    assert one_line_message(error) == (
        f"model.onnx: output 'output' has shape {shape}; expected (N, classes)"
    )


def test_onnx_outputs_of_another_rank_at_the_command_line(tmp_path: Path) -> None:
    path = export_onnx(Reshaped(with_a_dimension), tmp_path / "model.onnx")
    args = ("search", "--model", str(path), "--out", str(tmp_path / "out"), "--runs", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "IDENTIKIT_DATA": str(tmp_path / "data")},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "model.onnx: output 'output' has shape (4, 10, 1); expected (N, classes)" in last


RGB = ImageShape(3, 32, 32)


@pytest.mark.parametrize(
    ("dims", "given", "layout", "expected"),
    [
        ([None, 3, 32, 32], None, None, (RGB, "nchw")),
        ([None, 32, 32, 3], None, None, (RGB, "nhwc")),
        ([1, 28, 28, 1], None, None, (MNIST_SHAPE, "nhwc")),
        ([None, 32, 32, 3], None, "nchw", (ImageShape(32, 32, 3), "nchw")),  # told: obeyed
        ([None, 3, 3, 3], None, None, (ImageShape(3, 3, 3), "nchw")),  # ambiguous: channels first
        ([None, 1, 28, 28], MNIST_SHAPE, None, (MNIST_SHAPE, "nchw")),
        ([None, None, None, None], RGB, None, (RGB, "nchw")),
        ([None, 3, None, None], RGB, None, (RGB, "nchw")),
        ([None, None, 28, 28], None, None, (MNIST_SHAPE, "nchw")),  # what identikit always read
        ([None, None], None, None, (MNIST_SHAPE, "nchw")),
        ([None, 3072], RGB, "nhwc", (RGB, "nhwc")),
    ],
)
def test_the_image_shape_of_an_onnx_input(
    dims: list[int | None],
    given: ImageShape | None,
    layout: str | None,
    expected: tuple[ImageShape, str],
) -> None:
    assert onnx_input("m.onnx", dims, given=given, layout=layout) == expected


@pytest.mark.parametrize(
    ("dims", "given", "message"),
    [
        (
            [None, 32, 32, 3],
            MNIST_SHAPE,
            "m.onnx: --input-shape 1x28x28 does not fit the model's input Nx32x32x3 "
            "(layout nhwc, images 3x32x32)",
        ),
        (
            [None, 3, None, None],
            ImageShape(1, 8, 8),
            "m.onnx: --input-shape 1x8x8 does not fit the model's input Nx3xNxN "
            "(layout nchw, images 3x?x?)",
        ),
        (
            [None, 3, None, None],
            None,
            "m.onnx: input Nx3xNxN has dynamic dimensions; give its image shape with "
            "--input-shape C,H,W",
        ),
        (
            [None, 3072],
            None,
            "m.onnx: input takes flat images of 3072 values; give their shape with "
            "--input-shape C,H,W",
        ),
        (
            [None, 3072],
            MNIST_SHAPE,
            "m.onnx: --input-shape 1x28x28 (784 values) does not fit the model's input Nx3072",
        ),
        (
            [None, 3, 32],
            None,
            "m.onnx: input has shape Nx3x32; expected (N, C, H, W), (N, H, W, C) or (N, values)",
        ),
    ],
)
def test_an_onnx_input_that_does_not_fit_is_refused_in_one_line(
    dims: list[int | None], given: ImageShape | None, message: str
) -> None:
    with pytest.raises(IdentikitError) as error:
        onnx_input("m.onnx", dims, given=given, layout=None)
    assert str(error.value) == message


def test_channels_last_is_detected_only_where_unambiguous() -> None:
    assert detect_layout([None, 32, 32, 3]) == "nhwc"
    assert detect_layout([None, 28, 28, 1]) == "nhwc"
    assert detect_layout([None, 3, 32, 32]) == "nchw"
    assert detect_layout([None, 1, 8, 1]) == "nchw"  # 1 both ends: either
    assert detect_layout([None, 32, None, 3]) == "nchw"  # a dynamic side: not sure
    assert detect_layout([None, 3072]) == "nchw"


class ChannelMeans(nn.Module):
    """Ten scores from the mean of each channel of an image, (N, C, H, W) -> (N, 10)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10] * 5


def export_dynamic(module: nn.Module, path: Path, example: torch.Tensor) -> Path:
    """``module`` as ONNX whose every input dimension but the channels is dynamic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n"}},
            dynamo=False,
        )
    return path


def test_a_dynamic_onnx_input_takes_the_shape_given(tmp_path: Path) -> None:
    path = export_dynamic(ChannelMeans(), tmp_path / "dyn.onnx", torch.rand(2, 3, 16, 16))
    with pytest.raises(IdentikitError, match=r"dyn\.onnx: input Nx3xNxN has dynamic dimensions"):
        load_classifier(path, device="cpu")
    classifier = load_classifier(path, device="cpu", expect=Expected(input_shape=RGB))
    assert classifier.info.input_shape == RGB
    images = torch.rand(4, 3, 32, 32)
    expected = ChannelMeans()(images).log_softmax(1)
    assert torch.allclose(classifier.log_probabilities(images), expected, atol=1e-5)
    with pytest.raises(IdentikitError, match="--input-shape 1x32x32 does not fit"):
        load_classifier(path, device="cpu", expect=Expected(input_shape=ImageShape(1, 32, 32)))


class ChannelsLast(nn.Module):
    """:class:`ChannelMeans` for images laid out channels last, (N, H, W, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means: torch.Tensor = ChannelMeans()(x.permute(0, 3, 1, 2))
        return means


def test_a_channels_last_onnx_model_is_read_as_such_and_said(tmp_path: Path) -> None:
    path = tmp_path / "nhwc.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ChannelsLast(),
            (torch.rand(1, 32, 32, 3),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamo=False,
        )
    told: list[str] = []
    classifier = load_classifier(path, device="cpu", engine=EngineOptions(log=told.append))
    assert classifier.info.input_shape == RGB and classifier.preprocessing.layout == "nhwc"
    assert told == [
        "nhwc.onnx: input is NHWC (1x32x32x3), read as layout nhwc (set --layout nchw to override)"
    ]
    images = torch.rand(3, 3, 32, 32)
    expected = ChannelMeans()(images).log_softmax(1)
    assert torch.allclose(classifier.log_probabilities(images), expected, atol=1e-5)
    told.clear()
    given = Preprocessing(layout="nhwc")
    load_classifier(path, device="cpu", preprocessing=given, engine=EngineOptions(log=told.append))
    assert told == []  # told, so nothing to say
    with pytest.raises(IdentikitError, match=r"--mean has 2 values.*3 channels"):
        load_classifier(path, device="cpu", preprocessing=Preprocessing(mean=(0.1, 0.2)))


def test_images_too_large_to_allocate_are_refused_before_a_probe(tmp_path: Path) -> None:
    """A dynamic model given --input-shape 3,100000,100000 (120 GB an image), or a model
    whose static dimensions ask as much: one line naming the limit, nothing allocated."""
    path = export_dynamic(ChannelMeans(), tmp_path / "dyn.onnx", torch.rand(2, 3, 16, 16))
    huge = ImageShape(3, 100_000, 100_000)
    with pytest.raises(IdentikitError, match=r"10,000,000,000 pixels per image is over the limit"):
        load_classifier(path, device="cpu", expect=Expected(input_shape=huge))
    with pytest.raises(IdentikitError, match=r"^m\.onnx: images \(3x100000x100000\): .*PIXELS"):
        onnx_input("m.onnx", [None, 3, 100_000, 100_000], given=None, layout=None)
    with pytest.raises(IdentikitError, match=r"^m\.onnx: images \(40000x100x100\): .*VALUES"):
        wide = ImageShape(40_000, 100, 100)
        onnx_input("m.onnx", [None, wide.size], given=wide, layout=None)
    assert onnx_input("m.onnx", [None, 3, 224, 224], given=None, layout=None)[0].size == 150_528


def test_a_flat_onnx_model_fixed_to_one_image_gives_its_modules_gradients(tmp_path: Path) -> None:
    """An ONNX input of flattened images (N, 784), its batch fixed at 1: the interpreter takes
    the same inputs as ONNX Runtime (flattened as they are) and gives the module's gradients."""
    torch.manual_seed(0)
    module = Reshaped(lambda out: out)
    path = tmp_path / "flat.onnx"
    export_model(module, path, fmt="onnx", flatten=True, fixed_batch=True)
    classifier = load_classifier(path, device="cpu")
    assert classifier.model.flat and classifier.model.fixed_batch == 1  # type: ignore[attr-defined]
    images = torch.rand(3, 1, 28, 28)
    values, grads = classifier.value_and_grad(images, lambda x, log_p, rows: log_p[:, 4])
    x = images.clone().requires_grad_(True)
    expected = torch.log_softmax(module(x), dim=1)[:, 4]
    (expected_grads,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(values, expected.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(grads, expected_grads, rtol=0, atol=1e-5)
