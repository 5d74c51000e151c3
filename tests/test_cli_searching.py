"""The search commands as a user meets them: help, the strategies list, consistent results and
summaries, strategy options, and bad settings and flags refused in one line before anything is
written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.cli import main
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.models.export import onnx_bytes
from identikit.strategies import (
    STRATEGIES,
)
from identikit.strategies.base import RunHooks
from identikit.strategies.priors import PRIORS
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from tests.helpers import (
    assert_one_line_error,
    assert_refused,
    rewrite_json,
    run_cli,
    run_main,
    same_results,
    stop_after,
)


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
    # 0 stands for "from the image's shape" (half the image's side), and says so
    side = {"name": "side", "type": "int", "default": 0, "from_the_shape": True, "on_mnist": 14}
    assert side in square["options"]
    masks = {o["name"]: o for o in listed["random-masks"]["options"]}
    assert masks["candidates"]["on_mnist"] == 500 and not masks["mask_amplitude"]["from_the_shape"]
    assert all(entry["source"] for entry in listed.values())
    assert listed["gradient"]["white_box"] and not listed["random-masks"]["white_box"]
    code, out, _ = run_main(capsys, "strategies")
    assert code == 0 and "square (black-box)" in out and "--option side" in out
    assert "amplitude         float  default from the image's shape (1.0 on MNIST)" in out


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
        (("--num-classes", "0"), "--num-classes"),
        (("--num-classes", "1"), "--num-classes"),
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


# --- Models of any shape ----------------------------------------------------------------------

SHAPED_MODELS = {
    "colour": ("colour-cnn", ImageShape(3, 32, 32)),
    "small-grey": ("cnn", ImageShape(1, 8, 8)),
}


def shaped_checkpoint(folder: Path, kind: str) -> Path:
    """A checkpoint of the registry's architecture for the shape, random weights (seeded)."""
    architecture, shape = SHAPED_MODELS[kind]
    torch.manual_seed(6)
    path = folder / f"{kind}.pt"
    model = build_model(architecture, 10, shape)
    save_checkpoint(path, model, architecture=architecture, metadata={}, input_shape=shape)
    return path


def shaped_search(model: Path, out: Path) -> list[str]:
    return [
        *("search", "--model", str(model), "--out", str(out), "--strategy", "random-masks"),
        *("--runs", "1", "--digits", "0-2", "--max-queries", "400", "--seed", "5"),
        # masks of 5% of the values (colour images now default to about six values), so that
        # the colour identikits are coloured enough for the grid to show it
        *("--candidates", "50", "--mask-density", "0.05"),
        *("--backend", "eager", "--chunk-size", "64", "--device", "cpu", "--no-progress"),
    ]


@pytest.mark.parametrize("kind", sorted(SHAPED_MODELS))
def test_search_resume_and_report_a_model_of_any_shape(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """identikit search, resume and report, end to end, on a colour 3 x 32 x 32 network and a
    grey 8 x 8 one: the shape is read from the checkpoint and recorded, identikits.npz holds
    the images of that shape, and grid.png shows them (in colour for the colour model)."""
    _, shape = SHAPED_MODELS[kind]
    model = shaped_checkpoint(tmp_path, kind)
    code, _, err = run_main(capsys, *shaped_search(model, tmp_path / "whole"))
    assert code == 0, err
    # The same sweep stopped after a group (as Ctrl-C stops it), then resumed by the command.
    classifier = load_classifier(
        model, device="cpu", engine=EngineOptions(backend="eager", chunk_size=64)
    )
    config = SweepConfig(
        digits=(0, 1, 2),
        runs=1,
        max_queries=400,
        seed=5,
        strategy_settings={"candidates": 50, "mask_density": 0.05},
    )
    stopped = sweep_to_folder(
        classifier,
        config,
        tmp_path / "cut",
        hooks=RunHooks(should_stop=stop_after(1)),
        options=SweepOptions(progress=False, model_path=str(model)),
    )
    assert stopped.results is None
    code, _, err = run_main(capsys, *shaped_search(model, tmp_path / "cut"))
    assert code == 0 and "resumed" in err, err
    same_results(tmp_path / "whole", tmp_path / "cut")
    results = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert results["model"]["input_shape"] == list(shape.dims)
    stored = (3, *shape.dims) if shape.channels > 1 else (3, shape.height, shape.width)
    with np.load(tmp_path / "cut" / "identikits.npz") as npz:
        assert npz["images"].shape == stored
    with Image.open(tmp_path / "cut" / "grid.png") as grid:
        pixels = np.asarray(grid.convert("RGB")).astype(int)
    assert pixels.shape[1] >= 3 * 110  # three classes in a row, 1.1 inches each
    coloured = int((abs(pixels[..., 1] - pixels[..., 2]) > 30).sum())  # not red labels
    assert (coloured > shape.height * shape.width) == (shape.channels == 3)
    code, _, err = run_main(capsys, "report", str(tmp_path / "cut"), "--model", str(model))
    assert code == 0, err
    page = (tmp_path / "cut" / "report.html").read_text()
    assert f"images {shape} (C x H x W" in page and "image/gif" in page


# --- What reaches the terminal -----------------------------------------------------------------

HOSTILE_NAMES = ["t\x1b]0;owned\x07", "c\x1b[2J", "two\nlines", "nul\x00", "c1\x9b2J"]


def test_class_names_reach_the_terminal_escaped(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Class names that would set the window title, clear the screen or forge a row are shown
    escaped in the search table; the results keep them as they are."""
    names = [*HOSTILE_NAMES, *"56789"]
    out = tmp_path / "names"
    code, printed, err = run_main(
        capsys,
        *("search", "--model", str(tiny_model), "--out", str(out), "--class-names"),
        ",".join(names),
        *("--digits", "0-4", "--runs", "1", "--candidates", "20", "--max-queries", "40"),
        *("--backend", "eager", "--chunk-size", "64", "--device", "cpu", "--no-progress"),
    )
    assert code == 0, err
    for text in (printed, err):
        assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)
    rows = printed.splitlines()
    for shown in ("t\\x1b]0;owned\\x07", "c\\x1b[2J", "two\\nlines", "nul\\x00", "c1\\x9b2J"):
        assert sum(shown in row for row in rows) == 1, printed
    assert json.loads((out / "results.json").read_text())["model"]["class_names"] == names


def test_a_model_file_name_reaches_the_terminal_escaped(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_model.rename(tmp_path / "m\x1b[2J.pt")
    code, _, err = run_main(capsys, *quick_search_args({"checkpoint": model}, tmp_path / "s"))
    assert code == 0, err
    assert "m\\x1b[2J.pt: scoring with" in err and "\x1b" not in err
    missing = tmp_path / "gone\x1b]0;x\x07.pt"
    code, _, err = run_main(capsys, *quick_search_args({"checkpoint": missing}, tmp_path / "t"))
    assert code == 2 and "\x1b" not in err and "\x07" not in err


def test_a_figure_that_cannot_be_drawn_loses_no_results(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A class name matplotlib cannot set (a lone surrogate, from a non-UTF-8 folder name):
    results.json, identikits.npz and the state are written before the grid is drawn, and the
    grid's failure is one line that says so; a second run says the same, losing nothing."""
    out = tmp_path / "sweep"
    argv = [
        *("search", "--model", str(tiny_model), "--out", str(out), "--class-names"),
        ",".join(["cat\udcff", *"123456789"]),
        *("--digits", "0", "--runs", "1", "--candidates", "20", "--max-queries", "40"),
        *("--backend", "eager", "--chunk-size", "64", "--device", "cpu", "--no-progress"),
    ]
    for _ in range(2):
        code, _, err = run_main(capsys, *argv)
        assert_refused((code, "", err), "the results are saved", "grid.png could not be drawn")
        results = json.loads((out / "results.json").read_text())
        assert results["runs"][0]["queries"] > 0 and results["runs"][0]["status"] != "active"
        assert (out / "identikits.npz").is_file() and (out / "sweep-state.npz").is_file()
        assert not (out / "grid.png").exists()


# --- Every class by default (issue 29) ----------------------------------------------------------

# One run per class, a few queries each: a sweep of every class that takes a second.
EVERY_CLASS = (
    *("--runs", "1", "--candidates", "20", "--max-queries", "41", "--backend", "eager"),
    *("--chunk-size", "64", "--device", "cpu", "--no-progress"),
)


def classes_model(path: Path, classes: int, architecture: str = "softmax") -> Path:
    """An untrained checkpoint of ``classes`` classes, for MNIST's 1 x 28 x 28."""
    torch.manual_seed(0)
    model = build_model(architecture, num_classes=classes).eval()
    save_checkpoint(path, model, architecture=architecture, metadata={"test_accuracy": 0.1})
    return path


@pytest.mark.parametrize("classes", [5, 12])
def test_a_search_without_a_class_flag_searches_every_class(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, classes: int
) -> None:
    """Before: 0-9 always (a 5-class model refused, 10 of 12 searched)."""
    model = classes_model(tmp_path / f"m{classes}.pt", classes)
    out = tmp_path / "sweep"
    code, stdout, err = run_main(
        capsys, "search", "--model", str(model), "--out", str(out), *EVERY_CLASS
    )
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["digits"] == list(range(classes))
    assert [run["digit"] for run in results["runs"]] == list(range(classes))
    rows = [line.split()[0] for line in stdout.splitlines() if line.strip()]
    assert str(classes - 1) in rows  # the last class has its row in the table
    assert "sweep of" not in err  # a sweep of 100 runs or fewer is not announced


def test_a_1000_class_model_plans_every_class_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A sweep of more than 100 runs says its size and budget in one line before it starts
    (here refused right after: its --out is a file)."""
    model = classes_model(tmp_path / "m1000.pt", 1000)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code, _, err = run_main(
        capsys, "search", "--model", str(model), "--out", str(blocked), *EVERY_CLASS
    )
    assert code == 2
    said = [line for line in err.splitlines() if "sweep of" in line]
    assert said == [
        "m1000.pt: sweep of 1,000 runs (1,000 classes x 1 runs), budget 41,000 model queries "
        "(41 a run)"
    ]
    assert err.index("sweep of") < err.index("identikit: error:")


def test_classes_and_digits_ask_for_the_same_sweep(
    capsys: pytest.CaptureFixture[str], tiny_model: Path, tmp_path: Path
) -> None:
    """--digits is --classes' older name; with neither, a 10-class model's sweep is 0-9's, the
    very sweep the old default made (same identity: the folder is recalled, not redone)."""
    out = tmp_path / "sweep"
    common = ("search", "--model", str(tiny_model), "--out", str(out), *EVERY_CLASS)
    code, _, err = run_main(capsys, *common, "--classes", "0,3")
    assert code == 0, err
    code, _, err = run_main(capsys, *common, "--digits", "0,3")
    assert code == 0 and "finished: nothing to do" in err
    every = tmp_path / "every"
    code, _, err = run_main(
        capsys, "search", "--model", str(tiny_model), "--out", str(every), *EVERY_CLASS
    )
    assert code == 0, err
    assert json.loads((every / "results.json").read_text())["settings"]["digits"] == list(range(10))
    for old in ("--digits", "--classes"):
        code, _, err = run_main(
            capsys,
            "search",
            "--model",
            str(tiny_model),
            "--out",
            str(every),
            *EVERY_CLASS,
            old,
            "0-9",
        )
        assert code == 0 and "finished: nothing to do" in err


def test_a_class_the_model_lacks_is_one_line_naming_its_classes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = classes_model(tmp_path / "m5.pt", 5)
    out = tmp_path / "sweep"
    for flag in ("--classes", "--digits"):
        result = run_main(
            capsys, "search", "--model", str(model), "--out", str(out), *EVERY_CLASS, flag, "3,7"
        )
        assert_refused(result, "identikit: error:", "classes [7]", "model's 5 classes")
    assert not out.exists()
    compare = tmp_path / "compare"
    result = run_main(
        capsys,
        *("compare", "--model", str(model), "--out", str(compare), "--strategies", "square"),
        *("--runs", "1", "--max-queries", "41", "--classes", "3,7", "--no-progress"),
        *("--backend", "eager", "--chunk-size", "64", "--device", "cpu"),
    )
    assert_refused(result, "identikit: error:", "model's 5 classes")


def test_compare_without_a_class_flag_compares_on_every_class(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An MLP: compare adds a linear model's exact ceiling, which takes seconds to compute.
    model = classes_model(tmp_path / "m5.pt", 5, "mlp")
    out = tmp_path / "compare"
    code, _, err = run_main(
        capsys,
        *("compare", "--model", str(model), "--out", str(out), "--strategies", "square"),
        *("--runs", "1", "--max-queries", "41", "--backend", "eager", "--chunk-size", "64"),
        *("--device", "cpu", "--no-progress"),
    )
    assert code == 0, err
    results = json.loads((out / "square" / "results.json").read_text())
    assert results["settings"]["digits"] == [0, 1, 2, 3, 4]


# --- judge: file judges with their conventions, accuracy beside agreement, class names ----------

NAMES = ["apple", "bear", "cloud", "drum", "egg", "fern", "gate", "harp", "iris", "jug"]


class _ThresholdJudge(torch.nn.Module):
    """A judge of the tiny dataset's bars (class k: a bright bar at rows 2k+4, 2k+5) that
    takes inputs normalised by mean 0.5 and std 0.25: read as pixels, they never reach its
    threshold, and it calls every image class 0."""

    def __init__(self) -> None:
        super().__init__()
        rows = torch.zeros(10, 28, 28)
        for k in range(10):
            rows[k, 2 * k + 4 : 2 * k + 6, 4:24] = 1.0
        self.register_buffer("rows", rows.reshape(10, -1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        pixels = inputs * 0.25 + 0.5  # undo its own normalisation
        bright = torch.relu(pixels - 0.8).flatten(1)
        return bright @ self.rows.T  # type: ignore[operator]


def _judged(capsys: pytest.CaptureFixture[str], sweep: Path, root: Path, *extra: str) -> Any:
    code, stdout, err = run_main(
        capsys, "judge", str(sweep), "--dataset", "tiny", "--root", str(root), "--device", "cpu",
        *extra,
    )  # fmt: skip
    assert code == 0, err
    return stdout, err


def test_a_file_judge_is_read_with_its_conventions_and_its_accuracy_shown(
    finished: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The judge that needs mean and std: meaningless without them, and visibly so (its
    accuracy, and a warning); right with them. The classes show by name, never as digits."""
    sweep = tmp_path / "sweep"
    shutil.copytree(finished / "sweep", sweep)
    rewrite_json(
        sweep / "results.json", lambda r: {**r, "model": {**r["model"], "class_names": NAMES}}
    )
    judge = tmp_path / "bars.onnx"
    judge.write_bytes(onnx_bytes(_ThresholdJudge(), torch.rand(2, 1, 28, 28)))
    stdout, err = _judged(capsys, sweep, tiny_dataset, "--judges", str(judge), "--json")
    blind = json.loads(stdout.strip().splitlines()[-1])
    assert blind["judge_info"]["bars.onnx"]["accuracy"] < 0.2
    assert "warning: judge bars.onnx is" in err and "below 50%" in err
    assert blind["class_names"] == NAMES
    norm = ("--mean", "0.5", "--std", "0.25")
    stdout, err = _judged(capsys, sweep, tiny_dataset, "--judges", str(judge), *norm)
    assert "warning" not in err
    assert "its own accuracy 100.0% on 100 real test images (file)" in stdout
    assert "apple" in stdout and "bear" in stdout and "digit" not in stdout.lower()
    written = json.loads((sweep / "judge.json").read_text())
    assert written["judge_info"]["bars.onnx"] == {
        "accuracy": 1.0, "test_images": 100, "dataset": "tiny", "kind": "file", "file": str(judge),
    }  # fmt: skip
    assert written["class_names"] == NAMES


def test_judge_help_says_the_conventions_are_for_file_judges(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["judge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one set, for every model file named in --judges" in text
    assert "--mean" in text and "--input-shape" in text and "under 50%" in text
