"""Loading a model file: what a checkpoint says of itself, ONNX models without gradients, formats
told by their content, TorchScript run only when trusted, and models that do not fit refused in
one line."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.classifier.loading import model_format
from identikit.classifier.probe import probe_pixels
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.checkpoint import load_checkpoint, save_checkpoint
from identikit.models.export import export_model
from identikit.models.info import Expected, ModelInfo
from identikit.models.onnx_model import NAMES_KEY
from identikit.models.preprocessing import Preprocessing
from tests.helpers import (
    assert_clean_error,
    assert_one_line_error,
    hostile_torchscript,
    run_cli,
    search_args,
    small_model,
    softmax_model,
)


def test_load_classifier_describes_a_checkpoint(tmp_path: Path) -> None:
    path = small_model(tmp_path / "small.pt")
    classifier = load_classifier(
        path, device="cpu", expect=Expected(class_names=tuple("0123456789"))
    )
    info = classifier.info
    assert info.name == "small.pt" and info.input_shape == MNIST_SHAPE
    assert info.sha256 is not None and len(info.sha256) == 64
    assert classifier.card == {"architecture": "softmax", "parameters": 7850, "test_accuracy": 0.1}
    assert classifier.detected_outputs and classifier.outputs == "logits"
    with pytest.raises(IdentikitError, match=r"small\.pt returns 10 classes, expected 3"):
        load_classifier(path, device="cpu", expect=Expected(classes=3))


def test_an_onnx_model_scores_and_gives_gradients(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    export_model(softmax_model(), onnx, fmt="onnx")
    classifier = load_classifier(onnx, device="cpu")
    assert classifier.torch_module is None and classifier.card == {"architecture": "ONNX"}
    assert classifier.choice.backend == "onnx" and classifier.chunk_size == 512
    images = probe_pixels(MNIST_SHAPE, 4, seed=0)
    with torch.inference_mode():
        expected = torch.log_softmax(softmax_model()(images), dim=1)
    torch.testing.assert_close(classifier.log_probabilities(images), expected, rtol=0, atol=1e-5)
    # Gradients come from identikit's ONNX interpreter: the module's own, within float32
    values, grads = classifier.value_and_grad(images, lambda x, log_p, rows: log_p[:, 0])
    x = images.clone().requires_grad_(True)
    (expected_grads,) = torch.autograd.grad(torch.log_softmax(softmax_model()(x), 1)[:, 0].sum(), x)
    torch.testing.assert_close(values, expected[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(grads, expected_grads, rtol=0, atol=1e-5)
    # bf16 is refused: for want of the instructions, or else because ONNX Runtime lacks it
    bf16 = EngineOptions(precision="bf16")
    with pytest.raises(IdentikitError, match=r"--precision bf16: (this CPU|ONNX Runtime scores m)"):
        Classifier(classifier.reference, ModelInfo(name="m.onnx"), engine=bf16)


def test_model_format_reads_the_content(tmp_path: Path) -> None:
    checkpoint = small_model(tmp_path / "m.bin")
    assert model_format(checkpoint, checkpoint.read_bytes()) == "checkpoint"
    with pytest.raises(IdentikitError, match="not an identikit checkpoint, a TorchScript file"):
        model_format(checkpoint, b"plain text")


def test_torchscript_named_pt_does_not_run_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "written-by-the-model"
    model = hostile_torchscript(tmp_path / "cnn.pt", marker)
    refused = run_cli(*search_args(model, tmp_path / "out"))
    assert_clean_error(refused.returncode, refused.stderr, "cnn.pt", "TorchScript", "--trust-code")
    assert not marker.exists()
    trusted = run_cli(*search_args(model, tmp_path / "out"), "--trust-code")
    assert trusted.returncode == 0, trusted.stderr
    assert "runs with your permissions" in trusted.stderr
    assert marker.exists()  # so the refusal above was what kept it from running


class ThreeChannels(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))[:, :3].repeat(1, 4)


def test_bad_models_give_clear_errors(tiny_model: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "rgb.onnx"
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ThreeChannels(),
            (torch.rand(2, 3, 32, 32),),
            buffer,  # type: ignore[arg-type]  # torch's stub omits file objects
            dynamo=False,
            input_names=["img"],
            dynamic_axes={"img": {0: "n"}},
        )
    wrong.write_bytes(buffer.getvalue())
    assert load_classifier(wrong, device="cpu").info.input_shape == ImageShape(3, 32, 32)
    with pytest.raises(IdentikitError) as error:
        load_classifier(wrong, device="cpu", expect=Expected(input_shape=MNIST_SHAPE))
    assert str(error.value) == (
        "rgb.onnx: --input-shape 1x28x28 does not fit the model's input Nx3x32x32 "
        "(layout nchw, images 3x32x32)"
    )
    (tmp_path / "junk.onnx").write_bytes(os.urandom(300))
    with pytest.raises(IdentikitError, match="not a usable ONNX model"):
        load_classifier(tmp_path / "junk.onnx", device="cpu")
    (tmp_path / "junk.bin").write_bytes(os.urandom(300))
    with pytest.raises(IdentikitError, match="not an identikit checkpoint, a TorchScript"):
        load_classifier(tmp_path / "junk.bin", device="cpu")
    with pytest.raises(IdentikitError, match="returns 10 classes, expected 5"):
        load_classifier(tiny_model, device="cpu", expect=Expected(classes=5))
    proc = run_cli(
        "search", "--model", str(wrong), "--input-shape", "1,28,28", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "rgb.onnx", "1x28x28", "Nx3x32x32")
    proc = run_cli(
        "search", "--model", str(tiny_model), "--num-classes", "7", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "expected 7")
    proc = run_cli(
        "search", "--model", str(tiny_model), "--class-names", "a,b", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "2 class names (--class-names", "a model of 10 classes")


def test_a_colour_checkpoint_loads_as_a_classifier_of_its_shape(tmp_path: Path) -> None:
    shape = ImageShape(3, 32, 32)
    torch.manual_seed(0)
    model = build_model("colour-cnn", 10, shape).eval()
    path = tmp_path / "colour.pt"
    save_checkpoint(path, model, architecture="colour-cnn", metadata={}, input_shape=shape)
    loaded, meta = load_checkpoint(path)
    assert meta["input_shape"] == shape
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    classifier = load_classifier(path, device="cpu", engine=EngineOptions(backend="eager"))
    assert classifier.info.input_shape == shape and classifier.num_classes == 10
    images = torch.rand(5, *shape.dims)
    scores = classifier.log_probabilities(images)
    assert scores.shape == (5, 10)
    assert torch.allclose(scores, torch.log_softmax(model(images), 1), atol=1e-5)


def test_a_checkpoint_says_its_shape_and_class_names(tmp_path: Path) -> None:
    shape = ImageShape(3, 16, 16)
    path = tmp_path / "shapes.pt"
    names = ["circle", "square", "triangle"]
    model = build_model("colour-cnn", 3, shape)
    save_checkpoint(
        path, model, architecture="colour-cnn", metadata={"class_names": names}, input_shape=shape
    )
    classifier = load_classifier(path, device="cpu", expect=Expected(input_shape=shape))
    assert classifier.class_names == names and classifier.info.input_shape == shape
    given = load_classifier(path, device="cpu", expect=Expected(class_names=("a", "b", "c")))
    assert given.class_names == ["a", "b", "c"]  # the user's names win
    with pytest.raises(IdentikitError) as error:
        load_classifier(path, device="cpu", expect=Expected(input_shape=ImageShape(3, 32, 32)))
    assert str(error.value) == (
        "shapes.pt takes images of 3x16x16 (its checkpoint records it), not --input-shape 3x32x32"
    )
    with pytest.raises(IdentikitError, match="--layout nhwc is for TorchScript and ONNX"):
        load_classifier(path, device="cpu", preprocessing=Preprocessing(layout="nhwc"))
    # Names that are not one text per class are not shown: the numbers are.
    save_checkpoint(
        path, model, architecture="colour-cnn", metadata={"class_names": ["a"]}, input_shape=shape
    )
    assert load_classifier(path, device="cpu").class_names == ["0", "1", "2"]


class ColourMeans(nn.Module):
    """Ten scores from the mean of each channel: takes images of three channels only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)).reshape(-1, 3).repeat(1, 4)[:, :10] * 5


def test_a_torchscript_model_takes_the_shape_given(tmp_path: Path) -> None:
    path = tmp_path / "colour.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation
        torch.jit.save(torch.jit.script(ColourMeans()), str(path))
    shape = ImageShape(3, 20, 24)
    classifier = load_classifier(
        path, device="cpu", expect=Expected(input_shape=shape), trust_code=True
    )
    assert classifier.info.input_shape == shape
    images = torch.rand(3, *shape.dims)
    expected = ColourMeans()(images).log_softmax(1)
    assert torch.allclose(classifier.log_probabilities(images), expected, atol=1e-6)
    with pytest.raises(IdentikitError) as error:
        load_classifier(path, device="cpu", trust_code=True)  # MNIST's shape, by default
    message = str(error.value)
    assert message.startswith(
        "colour.ts fails on images of shape (N, 1, 28, 28) (--input-shape C,H,W gives another): "
    )
    assert "\n" not in message


def test_an_onnx_file_gives_the_class_names_its_metadata_records(tmp_path: Path) -> None:
    plain = tmp_path / "plain.onnx"
    export_model(softmax_model(), plain, fmt="onnx")
    assert load_classifier(plain, device="cpu").class_names == [str(c) for c in range(10)]
    model = onnx.load_from_string(plain.read_bytes())
    names = [f"class {c}, the {c}th" for c in range(10)]
    onnx.helper.set_model_props(model, {NAMES_KEY: json.dumps(names)})
    named = tmp_path / "named.onnx"
    named.write_bytes(model.SerializeToString())
    assert load_classifier(named, device="cpu").class_names == names
    # --class-names wins over the file's own
    given = tuple("abcdefghij")
    chosen = load_classifier(named, device="cpu", expect=Expected(class_names=given))
    assert chosen.class_names == list(given)
    # names that are no list of texts are refused in one line, naming the key
    onnx.helper.set_model_props(model, {NAMES_KEY: json.dumps({"0": "a"})})
    named.write_bytes(model.SerializeToString())
    with pytest.raises(IdentikitError, match=r"named\.onnx: metadata 'identikit\.class_names'"):
        load_classifier(named, device="cpu")
    # a list of the wrong length is the probe's mismatch
    onnx.helper.set_model_props(model, {NAMES_KEY: json.dumps(["a", "b", "c"])})
    named.write_bytes(model.SerializeToString())
    with pytest.raises(IdentikitError, match="3 class names"):
        load_classifier(named, device="cpu")
