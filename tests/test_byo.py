"""Bring your own model and dataset: TorchScript, ONNX, preprocessing, IDX folders (issue 6)."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier, load_classifier
from identikit.data.datasets import load_dataset
from identikit.models.export import export_model
from identikit.models.preprocessing import Preprocessing, detect_output_kind
from identikit.strategies import (
    Budget,
    Converged,
    SearchState,
    Stuck,
    advance,
    initial_state,
    make_strategy,
)
from tests.helpers import assert_one_line_error, run_cli, toy_linear, write_idx_folder

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
    from identikit.models import build_model
    from identikit.models.checkpoint import save_checkpoint

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
    from identikit.models.checkpoint import load_checkpoint

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
    from identikit.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    out = tmp_path / "fixed.onnx"
    export_model(model, out, fmt="onnx", flatten=True, fixed_batch=True)
    classifier = load_classifier(out, device="cpu")
    assert classifier.model.fixed_batch == 1 and classifier.model.flat  # type: ignore[attr-defined]
    state = small_search(classifier)
    assert torch.allclose(state.images, expected.images, atol=1e-4)


def test_output_detection() -> None:
    logits = torch.randn(4, 10) * 3
    assert detect_output_kind(logits) == "logits"
    assert detect_output_kind(logits.softmax(1)) == "probabilities"
    assert detect_output_kind(logits.log_softmax(1)) == "log-probabilities"


def test_onnx_has_no_gradients(reference: tuple[Path, SearchState], tmp_path: Path) -> None:
    from identikit.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(reference[0])
    export_model(model, tmp_path / "m.onnx", fmt="onnx")
    classifier = load_classifier(tmp_path / "m.onnx", device="cpu")
    state = initial_state(classifier, [1], [0])
    with pytest.raises(IdentikitError, match="no gradients"):
        advance(state, make_strategy("gradient"), classifier, [Budget(10)])


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
    with pytest.raises(IdentikitError, match=r"shape .*expected \(N, 1, 28, 28\)"):
        load_classifier(wrong, device="cpu")
    (tmp_path / "junk.onnx").write_bytes(os.urandom(300))
    with pytest.raises(IdentikitError, match="not a usable ONNX model"):
        load_classifier(tmp_path / "junk.onnx", device="cpu")
    (tmp_path / "junk.bin").write_bytes(os.urandom(300))
    with pytest.raises(IdentikitError, match="not an identikit checkpoint, a TorchScript"):
        load_classifier(tmp_path / "junk.bin", device="cpu")
    with pytest.raises(IdentikitError, match="returns 10 classes, expected 5"):
        load_classifier(tiny_model, device="cpu", classes=5)
    proc = run_cli("search", "--model", str(wrong), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "rgb.onnx")
    proc = run_cli(
        "search", "--model", str(tiny_model), "--classes", "7", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "expected 7")
    proc = run_cli(
        "search", "--model", str(tiny_model), "--class-names", "a,b", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, "2 class names for a model of 10 classes")


def test_class_names_in_the_summary(tiny_model: Path, tmp_path: Path) -> None:
    names = "zero,one,two,three,four,five,six,seven,eight,nine"
    proc = run_cli(
        "search",
        "--model",
        str(tiny_model),
        "--class-names",
        names,
        "--digits",
        "3",
        "--runs",
        "1",
        "--candidates",
        "20",
        "--out",
        str(tmp_path / "n"),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 three" in proc.stdout


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
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())["runs"]
    assert "detected as probabilities" in proc.stderr
    for a, b in zip(runs["pt"], runs["onnx"], strict=True):
        assert abs(a["confidence"] - b["confidence"]) < 1e-4 and a["queries"] == b["queries"]


def test_idx_folder_dataset_round_trip(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "fashion-like", train=300, test=100, gz=True)
    images, labels = load_dataset(f"idx:{folder}", "test")
    assert images.shape == (100, 28, 28) and labels.max() <= 9
    model = tmp_path / "m.pt"
    trained = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"idx:{folder}",
        "--out",
        str(model),
        "--epochs",
        "3",
        "--json",
        "--no-progress",
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.strip().splitlines()[-1])["test_accuracy"] > 0.9
    evaluated = run_cli("evaluate", "--model", str(model), "--dataset", f"idx:{folder}", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["accuracy"] > 0.9
    certainty = run_cli(
        "certainty",
        "--model",
        str(model),
        "--dataset",
        f"idx:{folder}",
        "--samples",
        "100",
        "--json",
    )
    assert certainty.returncode == 0, certainty.stderr
    assert_one_line_error(
        run_cli("evaluate", "--model", str(model), "--dataset", f"idx:{tmp_path / 'nowhere'}"),
        "nowhere",
    )


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    images, labels = load_dataset("fashion-mnist", "test", tmp_path)  # found in /usr/share
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    proc = run_cli("data", "--dataset", "fashion-mnist", "--root", str(tmp_path))
    assert proc.returncode == 0 and "fashion-mnist test: 10000 images" in proc.stdout
