"""Sweeps end to end through the CLI on a tiny model, and the statistics they report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from identikit.base.analysis import summarise_runs, wilson_interval
from identikit.base.errors import IdentikitError
from identikit.base.figures import certainty_histogram, identikit_grid
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.studies.certainty import SOURCES, certainty_report, max_probabilities
from identikit.sweeps.experiment import parse_digits
from tests.helpers import assert_one_line_error, make_digits, run_cli


def test_parse_digits() -> None:
    assert parse_digits("0-9") == tuple(range(10))
    assert parse_digits("7, 3,3") == (3, 7)
    assert parse_digits("0-2,7") == (0, 1, 2, 7)
    for bad in ("", "a", "3-1", "-1", "1-"):
        with pytest.raises(IdentikitError, match="malformed"):
            parse_digits(bad)


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 5)
    assert low == 0 and high == pytest.approx(0.4345, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_counts() -> None:
    runs = [
        {"digit": 1, "status": s, "queries": q, "confidence": c}
        for s, q, c in (("converged", 100, 0.995), ("converged", 300, 0.991), ("stuck", 900, 0.5))
    ]
    row = summarise_runs(runs, [1, 2])
    assert row["1"]["converged"] == 2 and row["1"]["stuck"] == 1
    assert row["1"]["median_queries"] == 200 and row["1"]["median_queries_all"] == 300
    assert row["2"]["runs"] == 0 and row["2"]["median_queries"] is None


def test_search_cli_writes_consistent_results(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = run_cli(
        "search",
        "--model",
        str(tiny_model),
        "--digits",
        "0-2",
        "--runs",
        "3",
        "--candidates",
        "50",
        "--max-queries",
        "5000",
        "--out",
        str(out),
        "--json",
        "--seed",
        "4",
    )
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    results = json.loads((out / "results.json").read_text())
    assert last["summary"] == results["summary"]
    runs = results["runs"]
    assert [(r["digit"], r["run"]) for r in runs] == [(d, r) for d in range(3) for r in range(3)]
    assert results["model"]["sha256"] and results["settings"]["strategy"] == "random-masks"
    assert results["settings"]["strategy_settings"]["candidates"] == 50
    for run in runs:
        assert run["queries"] == run["iterations"] * 50 + 1 <= 5000
        assert len(run["history"]) == run["iterations"] + 1
        assert run["history"][-1] == pytest.approx(run["confidence"])
        assert run["status"] in {"converged", "stuck", "budget"}
        assert (run["status"] == "converged") == (run["confidence"] >= 0.99)
    with np.load(out / "identikits.npz") as npz:
        images, digits = npz["images"], npz["digits"]
    assert images.dtype == np.float32 and images.shape == (9, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    assert digits.tolist() == [r["digit"] for r in runs]
    # Scoring the saved images again gives the recorded confidences.
    classifier = Classifier.from_checkpoint(tiny_model, device="cpu")
    probabilities = classifier.probabilities(torch.from_numpy(images).unsqueeze(1))
    rescored = probabilities[torch.arange(9), torch.from_numpy(digits)].numpy()
    np.testing.assert_allclose(rescored, [r["confidence"] for r in runs], rtol=0, atol=1e-5)
    assert Image.open(out / "grid.png").size[0] > 100
    # The table printed without --json names every digit.
    table = run_cli(
        "search",
        "--model",
        str(tiny_model),
        "--digits",
        "5",
        "--runs",
        "1",
        "--candidates",
        "20",
        "--out",
        str(tmp_path / "t"),
    )
    assert table.returncode == 0 and "median queries" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--runs", "0"], "--runs"),
        (["--target", "1.5"], "--target"),
        (["--target", "0"], "--target"),
        (["--digits", "12"], "outside the model's 10 classes"),
        (["--digits", "x-y"], "malformed"),
        (["--strategy", "magic"], "magic"),
        (["--mask-density", "2"], "--mask-density"),
    ],
)
def test_search_cli_bad_input(
    tiny_model: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    proc = run_cli("search", "--model", str(tiny_model), "--out", str(tmp_path / "o"), *args)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "o").exists()


def test_certainty_sources_and_report() -> None:
    classifier = Classifier(build_model("softmax"))
    test_images, _ = make_digits(50)
    maxima = max_probabilities(classifier, test_images, samples=50)
    assert list(maxima) == list(SOURCES)
    assert len(maxima["mnist-test"]) == 50 and len(maxima["blank"]) == 1
    report = certainty_report(maxima)
    for row in report.values():
        assert 0.1 <= row["mean"] <= 1 and 0 <= row["above_0.99"] <= row["above_0.6"] <= 1


def test_figures_are_pngs() -> None:
    images = np.random.default_rng(0).random((6, 28, 28)).astype(np.float32)
    grid = identikit_grid(images, [0, 0, 0, 1, 1, 1], [0.995, 0.5, 0.99, 0.1, 0.2, 0.999])
    wide = identikit_grid(np.concatenate([images, images]), [0] * 6 + [1] * 6, [0.5] * 12)
    assert grid[:8] == b"\x89PNG\r\n\x1a\n"
    width = Image.open(io.BytesIO(grid)).size[0]
    assert Image.open(io.BytesIO(wide)).size[0] > width  # 6 columns > 3
    # Rows are digits: white images for 0 above black ones for 1 (labels red, below target).
    shades = np.stack([np.full((28, 28), float(i % 2 == 0)) for i in range(6)])
    pixels = np.asarray(
        Image.open(io.BytesIO(identikit_grid(shades, [0, 1, 0, 1, 0, 1], [0.5] * 6)))
    )
    black = np.asarray((pixels[..., :3] < 10).all(axis=2))
    half = pixels.shape[0] // 2
    assert black[half:].sum() >= 3 * 28 * 28 and black[:half].sum() == 0
    histogram = certainty_histogram({"a": [0.1, 0.9], "b": np.array([0.5])})
    assert histogram[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.mnist
def test_certainty_cli_on_real_mnist(mnist_root: Path, mnist_softmax: Path, tmp_path: Path) -> None:
    model = mnist_softmax
    proc = run_cli(
        "certainty",
        "--model",
        str(model),
        "--root",
        str(mnist_root),
        "--json",
        "--samples",
        "2000",
        "--out",
        str(tmp_path / "c"),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == set(SOURCES)
    assert report["mnist-test"]["n"] == 2000
    assert report["mnist-test"]["median"] > 0.9  # sure on real digits ...
    assert report["sparse-dots"]["median"] < report["mnist-test"]["median"]  # ... less on dots
    assert (tmp_path / "c" / "certainty.png").stat().st_size > 1000
