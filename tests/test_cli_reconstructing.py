"""identikit reconstruct: a data-free sweep folder from the model alone, resumable, and read
by judge and report like any other."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import identikit
from identikit.base.shapes import ImageShape
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.strategies.registry import StrategySpec
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.reconstruction import reconstruction_config
from tests.helpers import (
    EAGER_CPU,
    run_cli,
    run_main,
    same_results,
    softmax_model,
    stop_after,
)


def test_reconstruct_reads_nothing_but_the_model(tiny_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "rec"
    args = ["reconstruct", "--model", str(tiny_model), "--digits", "3,8", "--runs", "2"]
    args += ["--steps", "4", "--out", str(out), *EAGER_CPU]
    # The data folder is empty and the only one the process knows: a read of any dataset
    # would fetch MNIST into it, or fail.
    env = {"IDENTIKIT_DATA": str(empty), "HOME": str(tmp_path / "home")}
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert list(empty.iterdir()) == []
    results = json.loads((out / "results.json").read_text())
    assert results["uses_data"] is False
    assert results["settings"]["strategy"] == "reconstruct"
    assert results["queries_per_step"] == 17
    for run in results["runs"]:
        assert run["iterations"] == 4 or run["status"] == "converged"
        assert run["queries"] == 1 + 17 * run["iterations"]
    assert "results in" in done.stdout
    again = run_cli(*args, env=env)
    assert again.returncode == 0
    assert "finished: nothing to do" in again.stderr
    # Without gradients, the same: the black-box twin, data-free too.
    black = tmp_path / "black"
    args = ["reconstruct", "--model", str(tiny_model), "--digits", "5", "--runs", "1"]
    args += ["--black-box", "--steps", "2", "--option", "samples=2", "--out", str(black)]
    done = run_cli(*args, *EAGER_CPU, env=env)
    assert done.returncode == 0, done.stderr
    assert list(empty.iterdir()) == []
    results = json.loads((black / "results.json").read_text())
    assert results["uses_data"] is False
    assert results["settings"]["strategy"] == "pen-evolution"
    assert results["runs"][0]["queries"] == 1 + 2 * (2 * 2 * 2 + 1)


def test_a_reconstruction_names_its_strategies_in_one_line(tiny_model: Path) -> None:
    with pytest.raises(identikit.IdentikitError, match="draws with reconstruct or pen-evolution"):
        reconstruction_config(StrategySpec("square"))
    done = run_cli("reconstruct", "--model", str(tiny_model), "--out", "x", "--option", "pen=9")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--option pen" in done.stderr


def test_searches_record_whether_they_read_data(mnist_root: Path, tmp_path: Path) -> None:
    del mnist_root  # where the manifold prior's MNIST is
    config = SweepConfig(digits=(1,), runs=1, max_queries=50, strategy="square")
    assert identikit.search(softmax_model(), config).record["uses_data"] is False
    manifold = SweepConfig(
        digits=(1,),
        runs=1,
        max_queries=3,
        strategy="gradient",
        strategy_settings={"priors": "manifold"},
    )
    assert identikit.search(softmax_model(), manifold).record["uses_data"] is True
    # A reconstruction takes no strategy but its own two, which read no data.
    with pytest.raises(identikit.IdentikitError, match="which read no data"):
        identikit.api.reconstruct(softmax_model(), manifold, out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_a_paused_reconstruction_resumes_to_the_same_identikits(tmp_path: Path) -> None:
    model = identikit.Classifier(softmax_model(), identikit.ModelInfo(sha256="toy"))
    config = reconstruction_config(
        StrategySpec("reconstruct", {"views": 3}), digits=(0, 4), runs=2, steps=3
    )
    hooks = identikit.RunHooks(should_stop=stop_after(2))
    with pytest.raises(identikit.Stopped):
        identikit.api.reconstruct(model, config, out=tmp_path / "paused", hooks=hooks)
    resumed = identikit.api.reconstruct(model, config, out=tmp_path / "paused")
    assert resumed.resumed
    identikit.api.reconstruct(model, config, out=tmp_path / "whole")
    same_results(tmp_path / "paused", tmp_path / "whole")


def test_reconstruct_without_a_class_flag_draws_every_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29: before, reconstruct drew 0-9 whatever the model (a 5-class model refused)."""
    model = tmp_path / "m5.pt"
    torch.manual_seed(0)
    save_checkpoint(
        model,
        build_model("softmax", num_classes=5).eval(),
        architecture="softmax",
        metadata={"test_accuracy": 0.1},
    )
    out = tmp_path / "rec"
    args = ["reconstruct", "--model", str(model), "--runs", "1", "--steps", "2"]
    code, _, err = run_main(capsys, *args, "--out", str(out), *EAGER_CPU)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["digits"] == [0, 1, 2, 3, 4]
    assert results["uses_data"] is False
    code, _, err = run_main(capsys, *args, "--classes", "0-4", "--out", str(out), *EAGER_CPU)
    assert code == 0 and "finished: nothing to do" in err
    assert reconstruction_config(classes=None).digits is None  # every class, until a model
    assert reconstruction_config(digits=(3,)) == reconstruction_config(classes=[3])


def colour_bn_model(path: Path, *, batch_norm: bool = True) -> Path:
    """A 4-class checkpoint of 3 x 16 x 16 colour images: the colour CNN (batch norms holding
    running statistics of noise), or without batch norm a softmax layer."""
    torch.manual_seed(0)
    shape = ImageShape(3, 16, 16)
    architecture = "colour-cnn" if batch_norm else "softmax"
    model = build_model(architecture, num_classes=4, input_shape=shape)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.rand(32, *shape.dims) * 0.5 + 0.25)
    save_checkpoint(
        path,
        model.eval(),
        architecture=architecture,
        metadata={"test_accuracy": 0.1},
        input_shape=shape,
    )
    return path


def test_reconstruct_draws_colour_models_with_their_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 30: before, a colour model was drawn in pen strokes, its batch norms unread."""
    model = str(colour_bn_model(tmp_path / "colour.pt"))
    out = tmp_path / "colour"
    args = ["reconstruct", "--model", model, "--classes", "1,2", "--runs", "2", "--steps", "3"]
    code, _, err = run_main(capsys, *args, "--out", str(out), *EAGER_CPU)
    assert code == 0, err
    assert (
        "colour.pt: statistics of 3 batch-norm layers; batches of 4 runs in layout order "
        "(class-major); the batch-norm statistics are shared within a batch"
    ) in err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["strategy"] == "invert"
    assert results["settings"]["strategy_settings"]["steps"] == 3
    assert results["grouping"].startswith("batches of 4 runs in layout order")
    assert results["uses_data"] is False
    assert results["queries_per_step"] == 2
    assert [run["queries"] for run in results["runs"]] == [7] * 4  # every step taken
    # The recipe named, and the options of the one chosen.
    strokes = tmp_path / "strokes"
    code, _, err = run_main(capsys, *args, "--recipe", "strokes", "--out", str(strokes), *EAGER_CPU)
    assert code == 0, err
    assert json.loads((strokes / "results.json").read_text())["settings"]["strategy"] == (
        "reconstruct"
    )
    code, _, err = run_main(capsys, *args, "--option", "strokes=3", "--out", "x", *EAGER_CPU)
    assert code == 2 and "--option 'strokes=3': expected NAME=VALUE with NAME one of" in err


def test_reconstruct_says_when_a_colour_model_has_no_batch_norm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(colour_bn_model(tmp_path / "plain.pt", batch_norm=False))
    out = tmp_path / "plain"
    args = ["reconstruct", "--model", model, "--classes", "0", "--runs", "2", "--steps", "3"]
    code, _, err = run_main(capsys, *args, "--out", str(out), *EAGER_CPU)
    assert code == 0, err
    assert "plain.pt: no batch-norm layers found; drawing without the statistics term" in err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["strategy"] == "invert"
    assert all(run["iterations"] == 3 for run in results["runs"])


def test_reconstruct_reads_the_statistics_of_an_onnx_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    module.train()
    with torch.no_grad():
        module(torch.rand(32, 3, 16, 16))
    module.eval()
    path = tmp_path / "bn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.rand(2, 3, 16, 16),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    out = tmp_path / "onnx"
    args = ["reconstruct", "--model", str(path), "--runs", "2", "--steps", "4"]
    code, _, err = run_main(capsys, *args, "--out", str(out), "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "bn.onnx: statistics of 2 batch-norm layers" in err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["strategy"] == "invert"
    assert results["settings"]["digits"] == [0, 1, 2]
    assert results["grouping"].startswith("batches of 6 runs")
    assert results["uses_data"] is False
    with np.load(out / "identikits.npz") as saved:
        assert saved["images"].shape == (6, 3, 16, 16)


def test_reconstruct_draws_a_colour_model_as_a_black_box(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(colour_bn_model(tmp_path / "colour.pt"))
    out = tmp_path / "black"
    args = ["reconstruct", "--model", model, "--classes", "3", "--runs", "2", "--steps", "2"]
    args += ["--black-box", "--option", "samples=4", "--out", str(out)]
    code, _, err = run_main(capsys, *args, *EAGER_CPU)
    assert code == 0, err
    assert "colour.pt: gradients estimated from scores alone; drawing without the statistics" in err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["strategy"] == "invert-black-box"
    assert "grouping" not in results  # no term over the batch: independent runs
    assert results["uses_data"] is False
    assert [run["queries"] for run in results["runs"]] == [1 + 6 * 2] * 2
