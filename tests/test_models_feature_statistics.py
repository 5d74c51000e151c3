"""The model's own batch-norm statistics (DeepInversion's R_feature): the term, its gradient,
and the layers found (identikit.models.batch_norm_taps) in a PyTorch module, a checkpoint, a
TorchScript file and an ONNX graph."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.batch_norm_taps import (
    HookedModule,
    ObservedGraph,
    TappedModel,
    layers_line,
    tap,
)
from identikit.models.channel_statistics import channel_moments
from identikit.models.checkpoint import load_model, save_checkpoint
from identikit.models.feature_statistics import FIRST_LAYER_WEIGHT, layer_weights, statistics_term
from identikit.models.info import ModelInfo
from identikit.models.onnx_graph import load_graph
from identikit.models.onnx_model import OnnxModel
from identikit.models.preprocessing import Preprocessing

SHAPE = ImageShape(3, 8, 8)
# The stored statistics of the first layer's input: what "real" images of the test net have.
CHANNEL_MEANS = torch.tensor([0.2, 0.5, 0.8])
CHANNEL_STDS = torch.tensor([0.05, 0.2, 0.1])
REAL_MODELS = Path(__file__).resolve().parents[2] / "shared" / "real-models"
NORMALISED = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def bn_net(seed: int = 0) -> nn.Sequential:
    """A small batch-normalised CNN, its running statistics those of images drawn from
    :func:`drawn` (a training-mode pass with a cumulative average, then eval mode)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.BatchNorm2d(3),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=2),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    )
    for layer in net:
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = None  # the running statistics become the plain average
    net.train()
    with torch.no_grad():
        net(drawn(512, 1.0, seed=99))
    return net.eval()


def drawn(count: int, likeness: float, seed: int = 0) -> torch.Tensor:
    """Images whose channel statistics are the stored ones at ``likeness`` 1, and further from
    them as it falls (grey at 0.9, spread 0.3 at 0)."""
    generator = torch.Generator().manual_seed(seed)
    means = likeness * CHANNEL_MEANS + (1 - likeness) * 0.9
    stds = likeness * CHANNEL_STDS + (1 - likeness) * 0.3
    noise = torch.randn(count, *SHAPE.dims, generator=generator)
    return noise * stds.view(1, 3, 1, 1) + means.view(1, 3, 1, 1)


def total(tapped: TappedModel, images: torch.Tensor) -> torch.Tensor:
    _, observed = tapped(images)
    return statistics_term(observed, len(tapped.layers)).total


def test_the_term_falls_as_the_batch_approaches_the_stored_statistics() -> None:
    tapped = tap(bn_net())
    assert len(tapped.layers) == 3
    values = [float(total(tapped, drawn(64, t, seed=1))) for t in (0.0, 0.4, 0.8, 1.0)]
    assert values == sorted(values, reverse=True)
    assert values[-1] < 0.1 * values[0]


def test_the_gradient_matches_finite_differences_in_float64() -> None:
    tapped = tap(bn_net().double())
    images = drawn(4, 0.5, seed=2).double().requires_grad_(True)
    groups = torch.tensor([0, 1, 0, 1])

    def grouped(x: torch.Tensor) -> torch.Tensor:
        _, observed = tapped(x, groups)
        return statistics_term(observed, 3, (2.0, 1.0, 0.5)).total

    assert torch.autograd.gradcheck(lambda x: total(tapped, x), (images,), fast_mode=True)
    assert torch.autograd.gradcheck(grouped, (images,), fast_mode=True)


def test_group_statistics_are_each_groups_own() -> None:
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    groups = torch.tensor([1, 0, 1, 2, 0, 2])
    mean, var = channel_moments(x, groups)
    for g in range(3):
        rows = x[groups == g]
        assert torch.allclose(mean[g], rows.mean((0, 2, 3)))
        assert torch.allclose(var[g], rows.var((0, 2, 3), unbiased=False))
    whole_mean, whole_var = channel_moments(x)
    assert whole_mean.shape == (1, 4) and torch.allclose(whole_var[0], x.var((0, 2, 3), False))
    with pytest.raises(IdentikitError, match="every group used"):
        channel_moments(x, torch.tensor([0, 0, 2, 2, 0, 0]))


def test_weights_are_deepinversions_by_default() -> None:
    assert layer_weights(3) == (FIRST_LAYER_WEIGHT, 1.0, 1.0) and layer_weights(0) == ()
    tapped = tap(bn_net())
    _, observed = tapped(drawn(16, 0.5))
    term = statistics_term(observed, 3)
    assert torch.isclose(term.total, term.per_layer @ torch.tensor([10.0, 1.0, 1.0]))
    uniform = statistics_term(observed, 3, (1.0, 1.0, 1.0))
    assert torch.isclose(uniform.total, term.per_layer.sum())
    with pytest.raises(IdentikitError, match="2 batch-norm layer weights for 3 layers"):
        statistics_term(observed, 3, (1.0, 1.0))


def test_a_checkpoints_layers_are_found_and_its_hooks_removed(tmp_path: Path) -> None:
    shape = ImageShape(3, 16, 16)
    model = build_model("colour-cnn", 10, shape)
    path = tmp_path / "colour.pt"
    save_checkpoint(path, model, architecture="colour-cnn", metadata={}, input_shape=shape)
    loaded = load_model(path).eval()
    tapped = tap(loaded)
    norms = [n for n, m in loaded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert isinstance(tapped, HookedModule) and len(norms) == 3
    assert [layer.name for layer in tapped.layers] == norms
    outputs, observed = tapped(torch.rand(5, 3, 16, 16))
    assert outputs.shape == (5, 10) and [seen.layer for seen in observed] == [0, 1, 2]
    assert all(not m._forward_pre_hooks for m in loaded.modules())
    assert layers_line(tapped.layers) == "statistics of 3 batch-norm layers"


def test_a_torchscript_file_is_tapped_through_onnx(tmp_path: Path) -> None:
    net = bn_net()
    path = tmp_path / "net.torchscript.pt"
    traced = torch.jit.trace(net, drawn(2, 1.0))  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(path))
    script = torch.jit.load(str(path)).eval()  # type: ignore[no-untyped-call]
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        script.get_submodule("0").register_forward_pre_hook(lambda *_: None)
    tapped = tap(script, drawn(2, 1.0), "net.torchscript.pt")
    assert isinstance(tapped, ObservedGraph)
    assert [layer.name for layer in tapped.layers] == ["0", "2", "5"]
    images = drawn(7, 0.3, seed=3)
    outputs, _ = tapped(images)
    assert torch.allclose(outputs, net(images), atol=1e-5)
    assert torch.isclose(total(tapped, images), total(tap(net), images), rtol=1e-5)


def export_preserving(net: nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    """``net`` as an ONNX file with its batch norms kept as nodes."""
    axes = {"x": {0: "n"}, "y": {0: "n"}} if dynamic else None
    example = drawn(2 if dynamic else 1, 1.0)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
    )
    return path


def test_an_onnx_graphs_batch_norm_nodes_are_observed(tmp_path: Path) -> None:
    net = bn_net()
    path = export_preserving(net, tmp_path / "net.onnx")
    tapped = tap(OnnxModel(path))
    assert [layer.name for layer in tapped.layers] == ["0", "2", "5"]
    assert [layer.channels for layer in tapped.layers] == [3, 4, 5]
    images = drawn(6, 0.6, seed=4)
    assert torch.isclose(total(tapped, images), total(tap(net), images), rtol=1e-5)
    graph = load_graph(path.read_bytes(), "net.onnx")
    seen: list[str] = []
    graph.run(images, lambda node, args: seen.append(node.op_type))
    assert seen.count("BatchNormalization") == 3
    fixed = tap(OnnxModel(export_preserving(net, tmp_path / "one.onnx", dynamic=False)))
    with pytest.raises(IdentikitError, match="fixed to a batch of 1"):
        fixed(images)


def test_a_model_without_batch_norm_says_so_and_still_gives_gradients() -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 4))
    classifier = Classifier(plain, ModelInfo(input_shape=SHAPE))
    assert classifier.batch_norm_layers() == ()
    assert layers_line(classifier.batch_norm_layers()) == "no batch-norm layers found"
    images = torch.rand(5, *SHAPE.dims)
    step = classifier.value_and_grad_with_statistics(images, first_class, 3.0)
    values, grads = classifier.value_and_grad(images, first_class)
    assert float(step.term.total) == 0.0
    assert torch.equal(step.values, values) and torch.allclose(step.grads, grads)


def first_class(x: torch.Tensor, log_probabilities: torch.Tensor, rows: slice) -> torch.Tensor:
    return log_probabilities[:, 0]


def test_batch_norm_1d_is_matched_over_the_batch() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    net.eval()
    tapped = tap(net)
    x = torch.randn(9, 3, 2, 2)
    _, (seen,) = tapped(x)
    hidden = net[1](net[0](x))
    assert torch.allclose(seen.mean[0], hidden.mean(0), atol=1e-6)
    assert torch.allclose(seen.var[0], hidden.var(0, unbiased=False), atol=1e-6)


def test_a_layer_in_training_mode_is_refused() -> None:
    net = bn_net().train()
    with pytest.raises(IdentikitError, match=r"layer 0 is in training mode.*model\.eval\(\)"):
        tap(net)(drawn(4, 1.0))


def test_another_threads_pass_is_not_recorded() -> None:
    net = bn_net()
    tapped = tap(net)
    started: list[threading.Thread] = []
    other: list[torch.Tensor] = []

    def hooked_call(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if not started:  # a second thread runs the plain forward while the tap is live
            started.append(threading.Thread(target=lambda: other.append(net(drawn(3, 1.0)))))
            started[0].start()
            started[0].join()

    handle = net[0].register_forward_pre_hook(hooked_call)
    try:
        _, observed = tapped(drawn(4, 1.0))
    finally:
        handle.remove()
    assert len(other) == 1 and [seen.layer for seen in observed] == [0, 1, 2]


def test_the_classifiers_step_is_the_same_for_a_module_torchscript_and_onnx(
    tmp_path: Path,
) -> None:
    net = bn_net()
    script = torch.jit.trace(net, drawn(2, 1.0))  # type: ignore[no-untyped-call]
    onnx_model = OnnxModel(export_preserving(net, tmp_path / "net.onnx"))
    images = drawn(6, 0.5, seed=5).clamp(0, 1)
    steps = []
    for model in (net, script, onnx_model):
        classifier = Classifier(model, ModelInfo(input_shape=SHAPE))
        assert [layer.name for layer in classifier.batch_norm_layers()] == ["0", "2", "5"]
        steps.append(classifier.value_and_grad_with_statistics(images, first_class, 0.5))
        assert classifier.queries == 6
    for step in steps[1:]:
        assert torch.allclose(step.values, steps[0].values, atol=1e-5)
        assert torch.allclose(step.grads, steps[0].grads, atol=1e-5)
        assert torch.allclose(step.term.distances, steps[0].term.distances, rtol=1e-4)


def test_the_term_pulls_the_gradient_towards_the_stored_statistics() -> None:
    classifier = Classifier(bn_net(), ModelInfo(input_shape=SHAPE))
    images = drawn(8, 0.0, seed=6).clamp(0, 1)
    step = classifier.value_and_grad_with_statistics(images, first_class, 1.0)
    weak = classifier.value_and_grad_with_statistics(images, first_class, 0.0)
    nudged = images + 1e-3 * (step.grads - weak.grads) / (step.grads - weak.grads).norm()
    after = classifier.value_and_grad_with_statistics(nudged, first_class, 1.0)
    assert float(after.term.total) < float(step.term.total)


@pytest.mark.skipif(
    not (REAL_MODELS / "cifar10").is_dir(),
    reason="the shared real models (../shared/real-models) are not here",
)
def test_the_real_resnet20_has_19_layers_and_real_images_match_them_best() -> None:
    path = REAL_MODELS / "cifar10" / "resnet20.torchscript.pt"
    script = torch.jit.load(str(path)).eval()  # type: ignore[no-untyped-call]
    shape = ImageShape(3, 32, 32)
    tapped = tap(script, NORMALISED.to_model(torch.rand(2, *shape.dims)), "resnet20")
    assert len(tapped.layers) == 19 and tapped.layers[0].name == "bn1"
    assert tapped.layers[-1].name == "layer3.2.bn2"
    with np.load(REAL_MODELS / "cifar10" / "test-1000.npz") as data:
        real = torch.from_numpy(data["images"][::50]).permute(0, 3, 1, 2).float() / 255
    noise = torch.rand(20, *shape.dims, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = [float(total(tapped, NORMALISED.to_model(x))) for x in (real, noise)]
    assert terms[0] < 0.5 * terms[1]
