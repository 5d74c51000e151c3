"""Exported models (ONNX, TorchScript) give the same identikits as the checkpoint, whatever their
input range, normalisation (one value or one per channel), layout and outputs, and whatever the
checkpoint's image shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.checkpoint import load_checkpoint, save_checkpoint
from identikit.models.export import CLASS_NAMES_KEY, export_model
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing
from identikit.strategies import (
    Budget,
    Converged,
    SearchState,
    Stuck,
    advance,
    initial_state,
    make_strategy,
)
from tests.helpers import run_cli, toy_linear

VARIANTS = [
    {"input_range": "0,1", "outputs": "logits"},
    {"input_range": "-1,1", "outputs": "probabilities"},
    {"input_range": "0,255", "mean": 33.3, "std": 78.6, "outputs": "log-probabilities"},
    {"input_range": "0,1", "mean": 0.1307, "std": 0.3081, "outputs": "logits"},
]


def small_search(classifier: Classifier) -> SearchState:
    state = initial_state(classifier, [0, 4, 9], [1, 2, 3])
    advance(
        state,
        make_strategy("random-masks", candidates=30),
        classifier,
        [Converged(0.99), Stuck(10 * 30), Budget(1500)],  # 10 iterations of 30 queries
    )
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchState]:
    path = tmp_path_factory.mktemp("ref") / "toy.pt"
    softmax = build_model("softmax")
    softmax.get_submodule("linear").load_state_dict(toy_linear(scale=0.03)[1].state_dict())
    save_checkpoint(path, softmax, architecture="softmax", metadata={})
    return path, small_search(load_classifier(path, device="cpu"))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_exported_models_give_the_same_identikits(
    reference: tuple[Path, SearchState],
    tmp_path: Path,
    fmt: str,
    variant: dict[str, Any],
) -> None:
    checkpoint, expected = reference
    model, _ = load_checkpoint(checkpoint)
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    export_model(model, out, fmt=fmt, preprocessing=Preprocessing(**variant))
    detected = load_classifier(
        out,
        device="cpu",
        preprocessing=Preprocessing(**{k: v for k, v in variant.items() if k != "outputs"}),
        trust_code=fmt == "torchscript",  # a program: loaded only when asked for
    )
    assert detected.outputs == variant["outputs"]  # detected from the outputs themselves
    state = small_search(detected)
    assert torch.allclose(state.images, expected.images, atol=1e-4)
    assert torch.allclose(state.confidences, expected.confidences, atol=1e-4)


def test_fixed_batch_and_flat_onnx(reference: tuple[Path, SearchState], tmp_path: Path) -> None:
    checkpoint, expected = reference
    model, _ = load_checkpoint(checkpoint)
    out = tmp_path / "fixed.onnx"
    export_model(model, out, fmt="onnx", flatten=True, fixed_batch=True)
    classifier = load_classifier(out, device="cpu")
    assert classifier.model.fixed_batch == 1 and classifier.model.flat  # type: ignore[attr-defined]
    state = small_search(classifier)
    assert torch.allclose(state.images, expected.images, atol=1e-4)


def test_onnx_gives_the_checkpoints_gradients(
    reference: tuple[Path, SearchState], tmp_path: Path
) -> None:
    model, _ = load_checkpoint(reference[0])
    export_model(model, tmp_path / "m.onnx", fmt="onnx")
    states = []
    for path in (reference[0], tmp_path / "m.onnx"):
        classifier = load_classifier(path, device="cpu")
        states.append(initial_state(classifier, [1], [0]))
        advance(states[-1], make_strategy("gradient"), classifier, [Budget(10)])
    assert torch.allclose(states[0].images, states[1].images, atol=1e-4)


def test_cli_export_and_search_round_trip(tiny_model: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    made = run_cli(
        "export",
        "--model",
        str(tiny_model),
        "--format",
        "onnx",
        "--out",
        str(onnx),
        "--input-range",
        "-1,1",
        "--outputs",
        "probabilities",
    )
    assert made.returncode == 0, made.stderr
    runs = {}
    for name, model, extra in (("pt", tiny_model, []), ("onnx", onnx, ["--input-range", "-1,1"])):
        proc = run_cli(
            "search",
            "--model",
            str(model),
            "--out",
            str(tmp_path / name),
            "--digits",
            "2,5",
            "--runs",
            "1",
            "--candidates",
            "40",
            "--max-queries",
            "2000",
            "--no-progress",
            "--device",  # where ONNX Runtime runs: the same random masks for both
            "cpu",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())["runs"]
    assert "detected as probabilities" in proc.stderr
    for a, b in zip(runs["pt"], runs["onnx"], strict=True):
        assert abs(a["confidence"] - b["confidence"]) < 1e-4 and a["queries"] == b["queries"]


COLOUR = ImageShape(3, 32, 32)
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
COLOUR_VARIANTS = {
    "onnx-nchw": ("onnx", Preprocessing(mean=MEAN, std=STD, layout="nchw")),
    "onnx-nhwc": ("onnx", Preprocessing(mean=MEAN, std=STD, layout="nhwc")),
    "onnx-nhwc-range": ("onnx", Preprocessing(input_range="-1,1", mean=0.2, layout="nhwc")),
    "torchscript-nhwc": ("torchscript", Preprocessing(mean=MEAN, std=STD, layout="nhwc")),
}


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Classifier, SearchState]:
    """A colour-cnn checkpoint of random weights for 3 x 32 x 32 images, its classifier and
    a small search of it."""
    path = tmp_path_factory.mktemp("colour") / "colour.pt"
    torch.manual_seed(0)
    model = build_model("colour-cnn", 10, COLOUR)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)  # confident outputs: searches that move
    names = [f"class {c}" for c in range(10)]
    save_checkpoint(
        path, model, architecture="colour-cnn", metadata={"class_names": names}, input_shape=COLOUR
    )
    classifier = load_classifier(path, device="cpu")
    assert classifier.class_names == names  # the checkpoint's own
    return path, classifier, small_search(classifier)


@pytest.mark.parametrize("variant", COLOUR_VARIANTS)
def test_a_colour_checkpoint_exports_for_its_shape_and_conventions(
    colour: tuple[Path, Classifier, SearchState], tmp_path: Path, variant: str
) -> None:
    checkpoint, reference, _ = colour
    fmt, preprocessing = COLOUR_VARIANTS[variant]
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    export_model(checkpoint, out, fmt=fmt, preprocessing=preprocessing)
    loaded = load_classifier(
        out,
        device="cpu",
        preprocessing=preprocessing,
        # TorchScript says nothing of its shape: the user does.
        expect=Expected(input_shape=COLOUR) if fmt == "torchscript" else None,
        trust_code=fmt == "torchscript",
    )
    assert loaded.info.input_shape == COLOUR
    images = torch.rand(16, *COLOUR.dims, generator=torch.Generator().manual_seed(1))
    expected = reference.log_probabilities(images)
    assert (loaded.log_probabilities(images) - expected).abs().max() <= 1e-4


def test_a_colour_nhwc_export_gives_the_same_identikits(
    colour: tuple[Path, Classifier, SearchState], tmp_path: Path
) -> None:
    checkpoint, _, expected = colour
    conventions = Preprocessing(mean=MEAN, std=STD, layout="nhwc")
    export_model(checkpoint, tmp_path / "m.onnx", fmt="onnx", preprocessing=conventions)
    told: list[str] = []
    # Told only the normalisation: the layout is read from the exported input (N, 32, 32, 3).
    loaded = load_classifier(
        tmp_path / "m.onnx",
        device="cpu",
        preprocessing=Preprocessing(mean=MEAN, std=STD),
        engine=EngineOptions(log=told.append),
    )
    assert loaded.preprocessing.describe() == (
        "pixels 0,1; mean 0.49,0.48,0.45; std 0.25,0.24,0.26; layout nhwc; outputs logits"
    )
    assert any("input is NHWC (Nx32x32x3), read as layout nhwc" in line for line in told)
    state = small_search(loaded)
    assert torch.allclose(state.images, expected.images, atol=1e-4)
    assert torch.allclose(state.confidences, expected.confidences, atol=1e-4)


def test_export_refuses_a_mean_of_another_length_than_the_channels(
    colour: tuple[Path, Classifier, SearchState],
    reference: tuple[Path, SearchState],
    tmp_path: Path,
) -> None:
    with pytest.raises(IdentikitError, match=r"--std has 2 values.*\(3x32x32\) have 3 channels"):
        export_model(
            colour[0], tmp_path / "m.onnx", fmt="onnx", preprocessing=Preprocessing(std=(1, 2))
        )
    with pytest.raises(IdentikitError, match=r"--mean has 3 values.*\(1x28x28\) have 1 channel"):
        export_model(
            reference[0], tmp_path / "m.onnx", fmt="onnx", preprocessing=Preprocessing(mean=MEAN)
        )
    assert not (tmp_path / "m.onnx").exists()


def test_a_checkpoints_onnx_file_keeps_its_batch_norms_and_class_names(tmp_path: Path) -> None:
    """Batch norms stay BatchNormalization nodes (not folded into the convolutions, so tools
    that look for them find them), and the checkpoint's class names are in the metadata."""
    import onnx

    checkpoint, shape = tmp_path / "cnn.pt", ImageShape(3, 16, 16)
    torch.manual_seed(0)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    save_checkpoint(
        checkpoint,
        build_model("colour-cnn", 10, shape),
        architecture="colour-cnn",
        metadata={"class_names": names},
        input_shape=shape,
    )
    export_model(checkpoint, tmp_path / "cnn.onnx", fmt="onnx")
    written = onnx.load(str(tmp_path / "cnn.onnx"))
    assert any(node.op_type == "BatchNormalization" for node in written.graph.node)
    recorded = {p.key: p.value for p in written.metadata_props}
    assert json.loads(recorded[CLASS_NAMES_KEY]) == names
    loaded, original = load_classifier(tmp_path / "cnn.onnx"), load_classifier(checkpoint)
    images = torch.rand(4, *shape.dims, generator=torch.Generator().manual_seed(0))
    difference = loaded.log_probabilities(images) - original.log_probabilities(images)
    assert difference.abs().max() <= 1e-4
