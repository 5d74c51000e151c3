"""identikit's ONNX interpreter (issue 29): ONNX files exported here from PyTorch modules run in
PyTorch with the outputs of ONNX Runtime (within 1e-4) and gradients that agree with finite
differences, across the opsets the exporter writes; unknown operators and quantized graphs are
refused in one line while ONNX Runtime still scores them; a gradient search through an ONNX
file converges where it used to be refused."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.models.export import onnx_bytes
from identikit.models.info import Expected, ModelInfo
from identikit.models.onnx_graph import load_graph
from identikit.models.onnx_ops import OPERATORS
from identikit.models.preprocessing import Preprocessing
from tests.helpers import EAGER_CPU, one_line_message, run_main

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


def exported(
    module: nn.Module, example: torch.Tensor, *, opset: int | None = None, fixed: bool = False
) -> bytes:
    """``module`` as ONNX bytes, as identikit's tests export (TorchScript exporter, offline),
    with a dynamic batch unless ``fixed``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,  # type: ignore[arg-type]
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=None if fixed else {"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def operators(data: bytes) -> set[str]:
    return {n.op_type for n in onnx.load_model_from_string(data).graph.node}


def runtime(data: bytes, inputs: torch.Tensor) -> np.ndarray:
    """ONNX Runtime's first output, image by image where the batch is fixed at 1."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0] == 1
    rows = [inputs[i : i + 1] for i in range(len(inputs))] if fixed else [inputs]
    return np.concatenate([session.run(None, {name: r.numpy()})[0] for r in rows])


def assert_agrees(data: bytes, inputs: torch.Tensor) -> None:
    """The interpreter's outputs are ONNX Runtime's within 1e-4."""
    with torch.no_grad():
        ours = load_graph(data, "m.onnx")(inputs).numpy()
    theirs = runtime(data, inputs)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-4


class Residual(nn.Module):
    """Conv, a residual Add with BatchNorm after it (kept as BatchNormalization: not foldable
    into a convolution), both max poolings, average pooling with and without counted padding,
    global average pooling, Flatten and Gemm, a Softmax output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.inner = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(6)
        self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.linear = nn.Linear(4, 5)
        with torch.no_grad():  # running statistics that are not the identity
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.running_mean = torch.empty(6).uniform_(-0.5, 0.5)
            self.norm.running_var = torch.empty(6).uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x))
        y = self.norm(y + self.inner(y))
        y = F.max_pool2d(y, 3, 2, padding=1, ceil_mode=True)
        y = F.avg_pool2d(y, 3, 1, padding=1, count_include_pad=False)
        y = F.avg_pool2d(self.up(y), 2, ceil_mode=True)
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return torch.softmax(self.linear(y), dim=1)


class Activations(nn.Module):
    """Clip, HardSwish, HardSigmoid, LeakyRelu, Sigmoid, Tanh on branches joined by Concat;
    Pad (constant and reflect); a slice; a mean over the image (ReduceMean); arithmetic
    (Sub, Div, Mul); a reshape to (N, -1) through Shape and Gather; MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.weight = nn.Parameter(torch.randn(96, 6) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.4) / 0.3 * 1.5
        x = F.pad(x, (1, 2, 0, 1), value=0.25)
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        y = self.conv(x)[:, :, 1:, :-1]
        branches = [
            F.relu6(y),
            F.hardswish(y),
            F.hardsigmoid(y),
            F.leaky_relu(y, 0.1),
            torch.sigmoid(y),
            torch.tanh(y),
        ]
        z = torch.cat(branches, dim=1)
        z = z - z.mean(dim=(2, 3), keepdim=True)
        z = F.max_pool2d(z, 2)
        return z.reshape(z.shape[0], -1).unsqueeze(1).matmul(self.weight).squeeze(1)


class ChannelsLast(nn.Module):
    """A model of images laid out (N, H, W, C), transposed at its input as Keras exports do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding="same")
        self.linear = nn.Linear(5 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(F.relu(self.conv(x.permute(0, 3, 1, 2))), 2)
        out: torch.Tensor = self.linear(y.flatten(1))
        return out


def seeded(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


@pytest.mark.parametrize("opset", [10, 11, 13, 17])
def test_the_interpreter_gives_onnx_runtimes_outputs(opset: int) -> None:
    images = torch.rand(3, 3, 8, 8)
    residual = exported(seeded(Residual), images, opset=opset)
    assert {"BatchNormalization", "Add", "MaxPool", "AveragePool", "ConvTranspose"} <= operators(
        residual
    )
    assert {"GlobalAveragePool", "Flatten", "Gemm", "Softmax"} <= operators(residual)
    assert_agrees(residual, images)
    activations = exported(seeded(Activations), images, opset=opset)
    expected = {"Clip", "HardSigmoid", "LeakyRelu", "Sigmoid", "Tanh", "Concat", "Pad", "Slice"}
    expected |= {"ReduceMean", "Reshape", "MatMul", "Sub", "Div", "Unsqueeze", "Squeeze"}
    if opset >= 14:
        expected.add("HardSwish")
    assert expected <= operators(activations)
    assert_agrees(activations, images)


def test_a_channels_last_input_is_transposed_as_the_graph_says() -> None:
    images = torch.rand(4, 8, 8, 3)
    data = exported(seeded(ChannelsLast), images)
    assert {"Transpose", "Conv"} <= operators(data)
    assert_agrees(data, images)


def test_a_graph_fixed_to_a_batch_of_one_runs_on_any_batch() -> None:
    """Exported for a batch of 1, the reshape to (N, -1) is the constant [1, -1]: each image
    runs through the graph as its own batch of 1 (vmap), the batch still computed at once."""
    data = exported(seeded(Activations), torch.rand(1, 3, 8, 8), fixed=True)
    graph = onnx.load_model_from_string(data).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert_agrees(data, torch.rand(5, 3, 8, 8))
    assert_agrees(data, torch.rand(1, 3, 8, 8))


def test_the_gradients_agree_with_finite_differences() -> None:
    """torch's gradcheck in float64 (fast mode: the Jacobian along random directions against
    central differences), one thread (two threads on a busy 2-core machine take a minute)."""
    torch.set_num_threads(1)
    data = exported(seeded(Residual), torch.rand(2, 3, 6, 6))
    graph = load_graph(data, "m.onnx").double()
    images = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(graph, (images,), eps=1e-6, atol=1e-6, fast_mode=True)
    fixed = exported(seeded(Activations), torch.rand(1, 3, 8, 8), fixed=True)
    graph = load_graph(fixed, "m.onnx").double()
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(graph, (images,), eps=1e-6, atol=1e-6, fast_mode=True)


def hand_made(path: Path, op: str, *, quantized: bool = False) -> Path:
    """A graph built by hand: (N, 1, 4, 4) -> [QuantizeLinear -> DequantizeLinear ->] Flatten
    -> MatMul -> ``op`` -> (N, 3), which ONNX Runtime runs."""
    weight = numpy_helper.from_array(np.linspace(-1, 1, 48, dtype=np.float32).reshape(16, 3), "w")
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten")]
    inits = [weight]
    if quantized:
        inits += [
            numpy_helper.from_array(np.array(0.01, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.uint8), "zero"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="quantize"),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="back"),
            helper.make_node("Flatten", ["dq"], ["flat"], name="flatten"),
        ]
    nodes += [
        helper.make_node("MatMul", ["flat", "w"], ["scores"], name="matmul"),
        helper.make_node(op, ["scores"], ["y"], name="the_last"),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("op", "quantized", "message"),
    [
        (
            "Elu",
            False,
            "m.onnx: operator Elu (node 'the_last') is not one identikit's ONNX interpreter "
            "runs, so the model gives no gradients; use a black-box strategy (ONNX Runtime "
            "scores the model as it is)",
        ),
        (
            "Relu",
            True,
            "m.onnx is a quantized (int8) ONNX graph (QuantizeLinear node 'quantize'), whose "
            "integer arithmetic gives no gradients: use a black-box strategy (ONNX Runtime "
            "scores the model as it is)",
        ),
    ],
)
def test_graphs_without_gradients_are_refused_in_one_line_and_still_scored(
    op: str, quantized: bool, message: str, tmp_path: Path
) -> None:
    assert "Elu" not in OPERATORS
    path = hand_made(tmp_path / "m.onnx", op, quantized=quantized)
    classifier = load_classifier(
        path, device="cpu", expect=Expected(input_shape=ImageShape(1, 4, 4))
    )
    images = torch.rand(3, 1, 4, 4)
    assert classifier.log_probabilities(images).shape == (3, 3)  # ONNX Runtime scores it
    with pytest.raises(IdentikitError) as error:
        classifier.value_and_grad(images, lambda x, log_p, rows: log_p[:, 0])
    assert one_line_message(error) == message


def test_an_nhwc_model_with_mean_and_std_differentiates_as_it_scores(tmp_path: Path) -> None:
    """The model's conventions (per-channel mean and std, channels last, probabilities out)
    apply alike to ONNX Runtime's scores and the interpreter's gradients: the gradient is the
    PyTorch module's own under the same conventions."""
    module = seeded(ChannelsLast)
    path = tmp_path / "nhwc.onnx"
    path.write_bytes(exported(nn.Sequential(module, nn.Softmax(1)), torch.rand(2, 8, 8, 3)))
    conventions = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    onnx_classifier = load_classifier(path, device="cpu", preprocessing=conventions)
    assert onnx_classifier.preprocessing.layout == "nhwc"
    assert onnx_classifier.outputs == "probabilities"
    info = ModelInfo(
        preprocessing=Preprocessing(
            mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), layout="nhwc", outputs="logits"
        ),
        input_shape=ImageShape(3, 8, 8),
    )
    torch_classifier = Classifier(module, info, device="cpu")
    images = torch.rand(4, 3, 8, 8)
    objective = lambda x, log_p, rows: log_p[:, 2]  # noqa: E731
    values, grads = onnx_classifier.value_and_grad(images, objective)
    expected_values, expected_grads = torch_classifier.value_and_grad(images, objective)
    torch.testing.assert_close(values, expected_values, rtol=0, atol=1e-4)
    torch.testing.assert_close(grads, expected_grads, rtol=0, atol=1e-4)
    scored = onnx_classifier.log_probabilities(images)[:, 2]
    torch.testing.assert_close(values, scored, rtol=0, atol=1e-4)


def test_a_gradient_search_through_an_onnx_file_converges(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(128, 10))
    with torch.no_grad():  # weights 3 times PyTorch's initial ones: a model that can be certain
        for parameter in model.parameters():
            parameter.mul_(3.0)
    path = tmp_path / "m.onnx"
    path.write_bytes(exported(model, torch.rand(2, 1, 28, 28)))
    out = tmp_path / "out"
    code, _, err = run_main(
        capsys,
        *("search", "--model", str(path), "--out", str(out), "--strategy", "gradient"),
        *("--digits", "0,1", "--runs", "1", "--max-queries", "400", "--seed", "0"),
        *EAGER_CPU[2:],
    )
    assert code == 0, err
    assert "gradients with identikit's ONNX interpreter in PyTorch" in err
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert len(runs) == 2 and all(r["confidence"] >= 0.99 for r in runs), runs


def test_the_cli_refuses_gradients_of_an_unknown_operator_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = hand_made(tmp_path / "m.onnx", "Elu")
    out = tmp_path / "out"
    code, _, err = run_main(
        capsys,
        *("search", "--model", str(path), "--out", str(out), "--strategy", "gradient"),
        *("--input-shape", "1,4,4", "--digits", "0,1", "--runs", "1", "--max-queries", "40"),
        *EAGER_CPU[2:],
    )
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("identikit: error:")]
    assert len(lines) == 1 and "operator Elu (node 'the_last')" in lines[0], err
    assert "Traceback" not in err


def test_a_reconstruction_through_an_onnx_file_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`reconstruct`, white-box too, draws through the interpreter where it used to be
    refused."""
    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    path.write_bytes(
        exported(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), torch.rand(2, 1, 28, 28))
    )
    out = tmp_path / "out"
    code, _, err = run_main(
        capsys,
        *("reconstruct", "--model", str(path), "--out", str(out), "--runs", "1"),
        *("--steps", "3", "--seed", "0", "--device", "cpu", "--no-progress"),
    )
    assert code == 0, err
    assert "gradients with identikit's ONNX interpreter in PyTorch" in err
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 10


def test_gradients_through_the_exported_graph_are_the_modules_bit_for_bit() -> None:
    """With its batch norms kept, a module's ONNX graph computes what identikit computes for
    the module itself (placed channels_last on a CPU): outputs and input gradients equal, not
    merely close. Before, the graph ran NCHW convolutions, 5e-6 apart, which gradient searches
    through the ONNX file and through the TorchScript file amplified to 1e-2."""
    module = seeded(Residual)
    example = torch.rand(2, 3, 16, 16)
    graph = load_graph(onnx_bytes(module, example, keep_batch_norm=True), "residual.onnx")
    placed = module.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    images = torch.rand(6, 3, 16, 16)
    grads = []
    for model in (graph, placed):
        x = images.clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad(torch.log_softmax(out, 1)[:, 1].sum(), x)
        grads.append((out.detach(), grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])


class Bounded(nn.Module):
    """ReLU6 (EfficientNet-Lite's activation) and a hardtanh to [-1, 2]: Clip nodes with fixed
    bounds, as attributes before opset 11 and as inputs from it on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu6(x * 2), F.hardtanh(x, -1.0, 2.0)], dim=1)


@pytest.mark.parametrize("opset", [10, 13])
def test_clip_gives_pytorchs_relu6_values_and_gradients_bit_for_bit(opset: int) -> None:
    """Where the input is exactly a bound, PyTorch's ReLU6 (hardtanh) passes no gradient; a
    clamp between tensors, as Clip ran before, passed it. The graph must differentiate as the
    model it was exported from."""
    data = exported(Bounded(), torch.rand(2, 3, 4, 4), opset=opset)
    assert "Clip" in operators(data)
    graph = load_graph(data, "bounded.onnx")
    images = torch.randn(4, 3, 4, 4) * 3
    images.view(-1)[:8] = torch.tensor([0.0, 3.0, -1.0, 2.0, 1.0, -0.5, 6.0, 0.5])  # the bounds
    results = []
    for model in (graph, Bounded()):
        x = images.clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad((out * torch.arange(out.shape[1]).view(1, -1, 1, 1)).sum(), x)
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_clip_between_bounds_computed_from_the_input_still_clamps() -> None:
    """Bounds that are not constants (here from the input's own mean, so they carry a
    gradient) are left to torch.clamp: ONNX Runtime's outputs, and the module's gradients,
    the bounds' share included."""

    class Band(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            centre = x.mean()
            return torch.clamp(x, min=centre, max=centre + 1)

    images = torch.randn(3, 2, 4, 4)
    data = exported(Band(), images, opset=13)
    assert "Clip" in operators(data)
    graph = load_graph(data, "band.onnx")
    grads = []
    for model in (graph, Band()):
        x = images.clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        grads.append(grad)
    assert np.allclose(graph(images).numpy(), runtime(data, images), atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert (grads[0] != 0).all()  # the bounds pass gradient to every pixel through the mean
