"""Gradients estimated from scores alone (NES with antithetic samples): close to the true
gradient on real PyTorch models, closer with more samples and, for a smooth model, in a coarse
direction space; deterministic given the generators; every query counted; through ONNX Runtime
and a quantized graph that gives no gradients; bad arguments refused in one line."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.classifier.classifier import Objective
from identikit.models.info import Expected, ModelInfo
from identikit.models.preprocessing import Preprocessing
from identikit.strategies import estimated_gradients
from identikit.strategies.base import run_generator
from identikit.strategies.estimated_gradients import Nes, estimated_value_and_grad
from tests.helpers import one_line_message

CPU = torch.device("cpu")
REAL_MODELS = Path(__file__).resolve().parents[2] / "shared" / "real-models"


def generators(count: int, iteration: int = 0, first_seed: int = 0) -> list[torch.Generator]:
    """One run generator per image, as a search gives a group."""
    return [run_generator(first_seed + seed, iteration, CPU) for seed in range(count)]


def small_net(shape: ImageShape, *, pool: int = 1, seed: int = 0) -> nn.Module:
    """A tiny conv net of 5 classes with random weights; ``pool`` averages the image first,
    which makes its gradient constant over pool x pool blocks (a smooth gradient)."""
    torch.manual_seed(seed)
    height, width = shape.dims[1] // pool, shape.dims[2] // pool
    return nn.Sequential(
        nn.AvgPool2d(pool) if pool > 1 else nn.Identity(),
        nn.Conv2d(shape.dims[0], 6, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(6 * height * width, 5),
    ).eval()


def classifier_of(module: nn.Module, shape: ImageShape) -> Classifier:
    return Classifier(module, ModelInfo(input_shape=shape))


def target_objective(targets: torch.Tensor) -> Objective:
    """The objective a search ascends: each image's target log-probability."""

    def objective(x: torch.Tensor, log_p: torch.Tensor, rows: slice) -> torch.Tensor:
        return log_p.gather(1, targets[rows].view(-1, 1)).squeeze(1)

    return objective


def cosines(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(estimate.flatten(1), truth.flatten(1))


def test_the_estimate_points_along_the_true_gradient_and_closer_with_more_samples() -> None:
    shape = ImageShape(3, 8, 8)
    classifier = classifier_of(small_net(shape), shape)
    images, targets = torch.rand(4, *shape.dims), torch.tensor([0, 1, 2, 3])
    objective = target_objective(targets)
    values, truth = classifier.value_and_grad(images, objective)
    found = {}
    for samples in (16, 400):
        estimated, grads = estimated_value_and_grad(
            classifier, images, objective, samples=samples, sigma=0.01, generators=generators(4)
        )
        torch.testing.assert_close(estimated, values, rtol=0, atol=1e-5)
        found[samples] = cosines(grads, truth)
    assert (found[16] > 0).all() and (found[400] > 0.5).all(), found
    assert found[400].mean() > found[16].mean() + 0.2, found
    # The scale is that of the gradient too (an ascent's step sizes carry over).
    ratio = grads.flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio


def test_coarse_directions_estimate_a_smooth_gradient_better_on_any_shape() -> None:
    """A model that sees the image in 4 x 4 blocks has a gradient constant over them: drawn at
    a quarter of the resolution, the same queries find it better (Ilyas et al. 2019). The
    shape is not square and not a multiple of the scale (12 x 9 -> 3 x 3 directions)."""
    shape = ImageShape(3, 12, 8)
    classifier = classifier_of(small_net(shape, pool=4), shape)
    images, targets = torch.rand(3, *shape.dims), torch.tensor([4, 0, 2])
    objective = target_objective(targets)
    _, truth = classifier.value_and_grad(images, objective)
    found = {}
    for scale in (1, 4, 3):
        nes = Nes(samples=40, sigma=0.01, scale=scale)
        _, grads = nes.value_and_grad(classifier, images, objective, generators(3))
        assert grads.shape == images.shape
        found[scale] = cosines(grads, truth)
    assert (found[4] > found[1] + 0.2).all(), found
    assert (found[3] > 0).all(), found


def test_the_same_generators_give_the_same_estimate_whatever_the_group_or_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shape = ImageShape(3, 8, 8)
    classifier = classifier_of(small_net(shape), shape)
    images, targets = torch.rand(5, *shape.dims), torch.tensor([0, 1, 2, 3, 4])

    def estimate(rows: slice, gens: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        objective = target_objective(targets[rows])
        return estimated_value_and_grad(
            classifier, images[rows], objective, samples=30, sigma=0.02, generators=gens
        )

    first = estimate(slice(0, 5), generators(5, iteration=3))
    again = estimate(slice(0, 5), generators(5, iteration=3))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = estimate(slice(0, 5), generators(5, iteration=4))
    assert not torch.allclose(first[1], other[1])
    # Run 2 alone (its own generator), and all five cut into blocks of 6 perturbed images:
    # the same directions, summed the same way, up to the model's rounding across batch sizes.
    alone = estimate(slice(2, 3), generators(1, iteration=3, first_seed=2))
    torch.testing.assert_close(alone[1][0], first[1][2], rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(estimated_gradients, "PROBE_BYTES", 6 * images[0].numel() * 4)
    queries = classifier.queries
    blocked = estimate(slice(0, 5), generators(5, iteration=3))
    assert classifier.queries - queries == 5 * 31
    torch.testing.assert_close(blocked[1], first[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(blocked[0], first[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("images", "samples", "scale"), [(1, 2, 1), (4, 20, 1), (3, 50, 2)])
def test_every_query_is_counted(images: int, samples: int, scale: int) -> None:
    shape = ImageShape(1, 6, 6)
    classifier = classifier_of(small_net(shape), shape)
    before = classifier.queries
    Nes(samples=samples, sigma=0.05, scale=scale).value_and_grad(
        classifier,
        torch.rand(images, *shape.dims),
        target_objective(torch.zeros(images, dtype=torch.long)),
        generators(images),
    )
    assert classifier.queries - before == images * (samples + 1)


def test_an_onnx_file_scored_by_onnx_runtime_gives_the_estimate(tmp_path: Path) -> None:
    shape = ImageShape(3, 8, 8)
    module = small_net(shape, seed=3)
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes
        torch.onnx.export(
            module,
            (torch.rand(2, *shape.dims),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
    onnx_classifier = load_classifier(path, device="cpu", expect=Expected(input_shape=shape))
    assert onnx_classifier.module is None  # scored by ONNX Runtime, not the PyTorch module
    images, targets = torch.rand(3, *shape.dims), torch.tensor([1, 3, 4])
    objective = target_objective(targets)
    values, truth = classifier_of(module, shape).value_and_grad(images, objective)
    estimated, grads = estimated_value_and_grad(
        onnx_classifier, images, objective, samples=400, sigma=0.01, generators=generators(3)
    )
    torch.testing.assert_close(estimated, values, rtol=0, atol=1e-4)
    assert (cosines(grads, truth) > 0.5).all()
    assert onnx_classifier.queries == 3 * 401


def quantized_graph(path: Path) -> tuple[Path, torch.Tensor]:
    """An int8 ONNX graph, (N, 1, 4, 4) -> QuantizeLinear -> DequantizeLinear -> Flatten ->
    MatMul -> (N, 3) logits, and its weights (16, 3): ONNX Runtime scores it, identikit's
    interpreter refuses it (integer arithmetic has no gradients)."""
    weights = np.linspace(-3, 3, 48, dtype=np.float32).reshape(16, 3)
    np.random.default_rng(0).shuffle(weights)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="quantize"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"], name="back"),
        helper.make_node("Flatten", ["dq"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes,
        "quantized",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.uint8), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path, torch.from_numpy(weights)


def test_a_quantized_model_without_gradients_still_gets_an_estimate(tmp_path: Path) -> None:
    """The interpreter refuses the graph, yet its scores are all the estimate needs: with a
    sigma above the quantization step, it finds the gradient of the float model beneath."""
    path, weights = quantized_graph(tmp_path / "int8.onnx")
    shape = ImageShape(1, 4, 4)
    classifier = load_classifier(path, device="cpu", expect=Expected(input_shape=shape))
    images, targets = 0.2 + 0.6 * torch.rand(4, *shape.dims), torch.tensor([0, 1, 2, 0])
    objective = target_objective(targets)
    with pytest.raises(IdentikitError, match="gives no gradients"):
        classifier.value_and_grad(images, objective)
    values, grads = estimated_value_and_grad(
        classifier, images, objective, samples=200, sigma=0.05, generators=generators(4)
    )
    float_images = images.clone().requires_grad_(True)
    log_p = torch.log_softmax(float_images.flatten(1) @ weights, dim=1)
    truth_values = target_objective(targets)(float_images, log_p, slice(0, 4))
    (truth,) = torch.autograd.grad(truth_values.sum(), float_images)
    torch.testing.assert_close(values, truth_values.detach(), rtol=0, atol=0.05)
    assert (cosines(grads, truth) > 0.8).all(), cosines(grads, truth)
    assert classifier.queries == 4 * 201


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"samples": 3}, "samples must be an even whole number of at least 2"),
        ({"samples": 0}, "samples must be an even whole number of at least 2"),
        ({"samples": 1}, "samples must be an even whole number of at least 2"),
        ({"samples": 4.0}, "samples must be an even whole number of at least 2"),
        ({"sigma": 0.0}, "sigma must be a finite number above 0, got 0.0"),
        ({"sigma": -0.1}, "sigma must be a finite number above 0, got -0.1"),
        ({"sigma": math.nan}, "sigma must be a finite number above 0, got nan"),
        ({"sigma": math.inf}, "sigma must be a finite number above 0, got inf"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings: dict[str, float], message: str) -> None:
    shape = ImageShape(1, 4, 4)
    classifier = classifier_of(small_net(shape), shape)
    arguments = {"samples": 4, "sigma": 0.1} | settings
    with pytest.raises(IdentikitError) as error:
        estimated_value_and_grad(
            classifier,
            torch.rand(2, *shape.dims),
            target_objective(torch.zeros(2, dtype=torch.long)),
            samples=arguments["samples"],  # type: ignore[arg-type]
            sigma=arguments["sigma"],
            generators=generators(2),
        )
    assert message in one_line_message(error)
    assert classifier.queries == 0


def test_a_bad_scale_or_too_few_generators_are_refused_in_one_line() -> None:
    with pytest.raises(IdentikitError) as error:
        Nes(samples=4, sigma=0.1, scale=0)
    assert one_line_message(error) == "scale must be a whole number of at least 1, got 0"
    shape = ImageShape(1, 4, 4)
    classifier = classifier_of(small_net(shape), shape)
    with pytest.raises(IdentikitError) as error:
        Nes(samples=4, sigma=0.1).value_and_grad(
            classifier, torch.rand(2, *shape.dims), target_objective(torch.zeros(2)), generators(1)
        )
    assert one_line_message(error) == "one generator per image is needed: 1 for 2 images"
    assert classifier.queries == 0


@pytest.mark.skipif(
    not (REAL_MODELS / "cifar10" / "resnet20.torchscript.pt").is_file(),
    reason="the shared real models (../shared/real-models) are not here",
)
def test_the_real_cifar_resnet20_gets_an_estimate_along_its_gradient() -> None:
    classifier = load_classifier(
        REAL_MODELS / "cifar10" / "resnet20.torchscript.pt",
        device="cpu",
        trust_code=True,
        preprocessing=Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        expect=Expected(input_shape=ImageShape(3, 32, 32)),
    )
    torch.manual_seed(0)
    images, targets = torch.rand(2, 3, 32, 32), torch.tensor([3, 5])
    objective = target_objective(targets)
    _, truth = classifier.value_and_grad(images, objective)
    nes = Nes(samples=40, sigma=0.01, scale=2)
    _, grads = nes.value_and_grad(classifier, images, objective, generators(2))
    # 20 random directions in 768 coarse dimensions: about 0.1 (here 0.12 and 0.10; 10
    # images at 50 samples: 0.10 to 0.14); a random direction's: 0 +- 0.02.
    assert (cosines(grads, truth) > 0.05).all(), cosines(grads, truth)
