"""The search commands as a user meets them: help, the strategies list, consistent results and
summaries, strategy options, and bad settings and flags refused in one line before anything is
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from identikit.classifier import load_classifier
from identikit.cli import main
from identikit.strategies import (
    STRATEGIES,
)
from identikit.strategies.priors import PRIORS
from tests.helpers import assert_one_line_error, assert_refused, run_cli, run_main


def test_search_help_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "{-1,1,0,1,0,255}" not in text
    assert "--input-range RANGE" in text and "0,1 | -1,1 | 0,255" in text
    assert ", ".join(PRIORS) in text
    assert "model queries without gain" in text


def test_strategies_command_lists_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "strategies", "--json")
    assert code == 0
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert set(listed) == set(STRATEGIES)
    square = listed["square"]
    assert "Square Attack" in square["source"] and square["description"]
    assert {"name": "side", "type": "int", "default": 14} in square["options"]
    assert all(entry["source"] for entry in listed.values())
    assert listed["gradient"]["white_box"] and not listed["random-masks"]["white_box"]
    code, out, _ = run_main(capsys, "strategies")
    assert code == 0 and "square (black-box)" in out and "--option side" in out


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
    classifier = load_classifier(tiny_model, device="cpu")
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


def test_search_cli_strategy_options(tiny_model: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "search",
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "g"),
        "--strategy",
        "gradient",
        "--prior",
        "tv,blur",
        "--option",
        "lr=0.2",
        "--digits",
        "3",
        "--runs",
        "1",
        "--max-queries",
        "300",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    settings = json.loads((tmp_path / "g" / "results.json").read_text())["settings"]
    assert settings["strategy_settings"]["priors"] == "tv,blur"
    assert settings["strategy_settings"]["lr"] == 0.2
    bad = run_cli(
        "search",
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "s"),
        "--strategy",
        "square",
        "--prior",
        "tv",
    )
    assert_one_line_error(bad, "takes no --prior")


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


def quick_search_args(models: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """A search that would take well under a second, were it not refused."""
    return [
        "search",
        "--model",
        str(models["checkpoint"]),
        "--out",
        str(out),
        "--runs",
        "1",
        "--max-queries",
        "50",
        "--digits",
        "0",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--strategy", "evolution", "--option", "sigma=nan"), "--option sigma"),
        (
            ("--strategy", "evolution", "--option", "min_sigma=1", "--option", "max_sigma=0.5"),
            "--option max_sigma",
        ),
        (("--strategy", "strokes", "--option", "width=inf"), "--option width"),
        (("--strategy", "gradient", "--option", "blur_sigma=0"), "--option blur_sigma"),
        (
            ("--strategy", "gradient", "--option", "manifold_components=0"),
            "--option manifold_components",
        ),
        (("--strategy", "gradient", "--option", "white_box=true"), "--option"),
        (("--option", "name=foo"), "--option"),
        (("--strategy", "square", "--option", "side=1.5"), "--option side"),
    ],
)
def test_search_refuses_bad_settings(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    extra: tuple[str, ...],
    named: str,
) -> None:
    result = run_main(capsys, *quick_search_args(models, tmp_path / "sweep", *extra))
    assert_refused(result, "identikit: error:", named)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--save-every", "nan"), "--save-every"),
        (("--save-every", "inf"), "--save-every"),
        (("--save-every", "0"), "--save-every"),
        (("--mean", "nan"), "--mean"),
        (("--mean", "inf"), "--mean"),
        (("--std", "nan"), "--std"),
        (("--std", "inf"), "--std"),
        (("--classes", "0"), "--classes"),
        (("--classes", "1"), "--classes"),
    ],
)
def test_search_flags_must_be_finite_and_in_range(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    extra: tuple[str, ...],
    named: str,
) -> None:
    result = run_main(capsys, *quick_search_args(models, tmp_path / "sweep", *extra))
    assert_refused(result, "identikit search: error: argument", named)
    assert not (tmp_path / "sweep").exists()
