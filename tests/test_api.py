"""The Python API (``identikit.search``, ``certainty``, ``compare``, ``judge``, ``report``):
the same files and numbers as the commands, typed results, and HTML for notebooks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import identikit
from identikit.classifier import load_classifier
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.sweeps.compare import THRESHOLDS
from identikit.sweeps.reconstruction import reconstruction_config
from identikit.sweeps.result_files import read_certainty, read_comparison
from tests.helpers import (
    CONFIG,
    one_line_message,
    run_cli,
    same_results,
    small_model,
    softmax_model,
    stop_after,
)

FLAGS = ("--digits", "0,3,7", "--runs", "3", "--candidates", "30", "--max-queries", "1500")


def RECORD_PATH(model: Path) -> identikit.SweepOptions:
    return identikit.SweepOptions(progress=False, model_path=str(model))


SMALL = identikit.SweepConfig(
    digits=(0, 3, 7),
    runs=3,
    strategy_settings={"candidates": 30},
    max_queries=1500,
)


def test_search_writes_what_the_command_writes(tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.pt")
    cli = ("search", "--model", str(model), "--out", str(tmp_path / "cli"), "--device", "cpu")
    proc = run_cli(*cli, *FLAGS)
    assert proc.returncode == 0, proc.stderr
    # The command measures the engines (--backend auto) for its work ahead (digits x runs x
    # --max-queries); so does this classifier, and both take the same cached choice.
    engine = identikit.EngineOptions(backend="auto", work=3 * 3 * 1500)
    loaded = identikit.load_classifier(model, device="cpu", engine=engine)
    result = identikit.search(loaded, SMALL, out=tmp_path / "api", options=RECORD_PATH(model))
    same_results(tmp_path / "cli", tmp_path / "api")
    record = json.loads((tmp_path / "api" / "results.json").read_text())
    assert result.folder == tmp_path / "api"
    assert result.summary == record["summary"]
    assert [r.confidence for r in result.runs] == [r["confidence"] for r in record["runs"]]
    assert [r.digit for r in result.runs] == [0, 0, 0, 3, 3, 3, 7, 7, 7]
    with np.load(tmp_path / "api" / "identikits.npz") as saved:
        assert np.array_equal(result.images, saved["images"])
    assert result.images.shape == (9, 28, 28)
    assert 0 <= result.converged <= 1 and result.total_queries == record["total_queries"]
    # A second call recalls the finished sweep instead of computing it again.
    again = identikit.search(loaded, SMALL, out=tmp_path / "api", options=RECORD_PATH(model))
    assert again.already_done and np.array_equal(again.images, result.images)


def test_search_takes_a_classifier_or_a_module_and_needs_no_folder(tmp_path: Path) -> None:
    module = softmax_model()
    from_module = identikit.search(module, SMALL)
    assert from_module.folder is None
    loaded = identikit.load_classifier(small_model(tmp_path / "m.pt"), device="cpu")
    from_classifier = identikit.search(loaded, SMALL)
    # The same weights: the same identikits, whichever way the model was handed over.
    assert np.array_equal(from_module.images, from_classifier.images)
    assert from_module.record["model"]["name"] == type(module).__name__


def test_a_module_is_known_by_its_weights(tmp_path: Path) -> None:
    """A module has no file to hash: its weights stand for it, so another module's search does
    not take over its folder."""
    identikit.search(softmax_model(seed=0), SMALL, out=tmp_path / "sweep")
    again = identikit.search(softmax_model(seed=0), SMALL, out=tmp_path / "sweep")
    assert again.already_done
    with pytest.raises(identikit.IdentikitError, match=r"holds a different sweep \(--model"):
        identikit.search(softmax_model(seed=1), SMALL, out=tmp_path / "sweep")


def test_a_stopped_search_raises_and_resumes_to_the_same_result(tmp_path: Path) -> None:
    model = identikit.Classifier(softmax_model(), identikit.ModelInfo(sha256="toy"))
    hooks = identikit.RunHooks(should_stop=stop_after(2))
    with pytest.raises(identikit.Stopped) as stopped:
        identikit.search(model, CONFIG, out=tmp_path / "stopped", hooks=hooks)
    assert stopped.value.folder == tmp_path / "stopped"
    assert (tmp_path / "stopped" / "sweep-state.npz").is_file()
    resumed = identikit.search(model, CONFIG, out=tmp_path / "stopped")
    assert resumed.resumed
    identikit.search(model, CONFIG, out=tmp_path / "whole")
    same_results(tmp_path / "stopped", tmp_path / "whole")


def test_search_result_draws_itself_in_a_notebook() -> None:
    result = identikit.search(softmax_model(), SMALL)
    page = result._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 1
    # One row per class, with its runs and rate.
    for digit, row in result.summary.items():
        assert f"<td>{digit}</td><td>{row['runs']}</td>" in page
    assert "SweepConfig" in repr(result) and "record" not in repr(result)


def test_certainty_gives_what_the_command_prints(tiny_dataset: Path, tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.pt")
    # One engine and chunk for both: left to measure, the two processes may each pick another
    # (a busy machine times them differently), whose float32 sums differ in the last digits.
    proc = run_cli(
        "certainty", "--model", str(model), "--dataset", f"idx:{tiny_dataset}",
        "--samples", "40", "--json", "--backend", "eager", "--chunk-size", "64", "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    engine = EngineOptions(backend="eager", chunk_size=64)
    result = identikit.certainty(
        load_classifier(model, device="cpu", engine=engine),
        samples=40,
        dataset=f"idx:{tiny_dataset}",
        out=tmp_path / "c",
    )
    assert result.statistics == json.loads(proc.stdout)
    assert read_certainty(tmp_path / "c") == result.statistics
    assert (tmp_path / "c" / "certainty.png").is_file()
    assert {len(values) for values in result.maxima.values()} <= {1, 40}
    page = result._repr_html_()
    assert all(f"<td>{source}</td>" in page for source in result.statistics)


def test_compare_runs_every_strategy_on_the_same_runs(tmp_path: Path) -> None:
    comparison = identikit.Comparison(
        ("random-masks", "square"), digits=(0, 3), runs=2, max_queries=1200
    )
    result = identikit.compare(softmax_model(), comparison, out=tmp_path / "cmp")
    assert set(result.sweeps) == {"random-masks", "square"}
    thresholds = [str(t) for t in THRESHOLDS]
    saved = read_comparison(tmp_path / "cmp", thresholds)
    for name, row in result.summary.items():
        assert saved[name]["success"] == row["success"]
        assert saved[name]["median_queries"] == row["median_queries"]
    assert (tmp_path / "cmp" / "curves.png").is_file()
    for name, sweep in result.sweeps.items():
        assert sweep.config.strategy == name
        assert [r.seed for r in sweep.runs] == [r.seed for r in result.sweeps["square"].runs]
    page = result._repr_html_()
    assert "<td>random-masks</td>" in page and "<td>square</td>" in page


def test_judge_and_report_on_a_sweep(tiny_dataset: Path, tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.pt")
    judge_file = small_model(tmp_path / "judge.pt", seed=1)
    identikit.search(str(model), SMALL, out=tmp_path / "sweep")
    setup = identikit.JudgeSetup(dataset="tiny", root=tiny_dataset)
    (verdict,) = identikit.judge(tmp_path / "sweep", [str(judge_file)], setup)
    saved = json.loads((tmp_path / "sweep" / "judge.json").read_text())
    assert verdict.agreement == saved["judges"] and set(verdict.agreement) == {"judge.pt"}
    assert verdict.nearest_neighbour == saved["nearest_neighbour"]
    assert "<td>judge.pt</td>" in verdict._repr_html_()
    page = identikit.report(tmp_path / "sweep", animate=False)
    assert page.path == tmp_path / "sweep" / "report.html" and page.path.is_file()
    assert page.path.resolve().as_uri() in page._repr_html_()


def test_api_errors_are_identikit_errors(tmp_path: Path) -> None:
    with pytest.raises(identikit.IdentikitError, match="samples"):
        identikit.certainty(softmax_model(), samples=0)
    with pytest.raises(identikit.IdentikitError, match="no finished sweep"):
        identikit.judge(tmp_path, ["softmax"])
    with pytest.raises(identikit.IdentikitError):
        identikit.search(tmp_path / "missing.pt")


def readme_example() -> str:
    """The Python block of README's "From Python" section."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("## From Python") :]
    return section[section.index("```python\n") + 10 : section.index("```\n", 10)]


@pytest.mark.mnist
@pytest.mark.slow
def test_the_readme_example_runs(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert mnist_root.is_dir()  # the files the example reads, where identikit finds them
    namespace: dict[str, object] = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert isinstance(result, identikit.SearchResult) and len(result.runs) == 4
    assert (tmp_path / "runs" / "py" / "judge.json").is_file()
    assert (tmp_path / "runs" / "py" / "report.html").is_file()


def test_datasets_of_any_shape_load_from_the_package() -> None:
    images = identikit.load_images("shapes:3")
    assert isinstance(images, identikit.ImageSet)
    assert images.shape == identikit.ImageShape(3, 32, 32)
    assert images.train_images.shape[1:] == images.shape.dims


def test_search_of_a_colour_model_gives_colour_identikits(tmp_path: Path) -> None:
    """A colour model's identikits come back as (N, C, H, W) images, drawn in colour."""
    shape = identikit.ImageShape(3, 12, 10)
    torch.manual_seed(2)
    model = identikit.Classifier(
        build_model("softmax", 10, shape),
        identikit.ModelInfo(name="colour", sha256="colour", input_shape=shape),
    )
    result = identikit.search(model, SMALL, out=tmp_path / "colour")
    assert result.images.shape == (9, 3, 12, 10)
    assert result.record["model"]["input_shape"] == [3, 12, 10]
    page = result._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 1
    again = identikit.search(model, SMALL, out=tmp_path / "colour")
    assert again.already_done and np.array_equal(again.images, result.images)


# --- Arguments checked as the command line checks its options (issue 28, group 11) -----------

TINY = identikit.SweepConfig(
    digits=(0,), runs=1, strategy_settings={"candidates": 30}, max_queries=300
)


def refused(call: Callable[[], object], message: str) -> None:
    """``call()`` raises a one-line IdentikitError holding ``message``."""
    with pytest.raises(identikit.IdentikitError) as caught:
        call()
    assert message in one_line_message(caught)


def test_an_empty_out_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``out=""`` is the current folder to Path: before, the sweep (and its lock) was written
    there; now it is refused as ``--out ''`` is, before any work."""
    monkeypatch.chdir(tmp_path)
    model = softmax_model()
    refused(lambda: identikit.search(model, TINY, out=""), "out: an empty path is not an output")
    refused(lambda: identikit.search(model, TINY, out="  "), "out: an empty path is not an output")
    refused(lambda: identikit.certainty(model, samples=10, out=""), "out: an empty path is not")
    comparison = identikit.Comparison(("square",), digits=(0,), runs=1, max_queries=100)
    refused(lambda: identikit.compare(model, comparison, out=""), "out: an empty path is not")
    refused(lambda: identikit.judge(""), "folder: an empty path is not a folder")
    refused(lambda: identikit.report(""), "folder: an empty path is not a folder")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", [None, "", 3, b"m.pt"])
def test_a_model_of_the_wrong_kind_is_named(model: object) -> None:
    """Before: ``search(None)`` raised TypeError from os.fspath; now one line says what a model
    may be (an empty path is no model file either)."""
    expected = "model: an empty path" if model == "" else "model must be a Classifier"
    refused(lambda: identikit.search(model, TINY), expected)  # type: ignore[arg-type]
    refused(lambda: identikit.certainty(model, samples=10), expected)  # type: ignore[arg-type]
    refused(lambda: identikit.reconstruct(model), expected)  # type: ignore[arg-type]


# The API as a notebook calls it, without a type checker: whatever it is handed.
UNTYPED: Any = identikit


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: UNTYPED.search(m, "x"), "config must be a SweepConfig or None, got 'x'"),
        (lambda m: UNTYPED.search(m, TINY, options="x"), "options must be a SweepOptions"),
        (lambda m: UNTYPED.search(m, TINY, hooks=print), "hooks must be a RunHooks"),
        (lambda m: UNTYPED.search(m, TINY, cluster="ray"), "cluster must be a RayCluster"),
        (
            lambda m: UNTYPED.search(m, TINY, options=UNTYPED.SweepOptions(save_every=math.nan)),
            "--save-every must be a finite number, got nan",
        ),
        (lambda m: UNTYPED.search(m, TINY, out=3), "out must be a path (a str or a Path)"),
        (lambda m: UNTYPED.reconstruct(m, 3), "config must be a SweepConfig or None"),
        (lambda m: UNTYPED.compare(m, None), "comparison must be a Comparison, got None"),
        (
            lambda m: UNTYPED.compare(
                m, UNTYPED.Comparison("square", digits=(0,), runs=1, max_queries=100)
            ),
            "comparison.strategies must be a sequence of names",
        ),
        (
            lambda m: UNTYPED.compare(
                m, UNTYPED.Comparison(("square",), digits="37", runs=1, max_queries=100)
            ),
            "--digits must be a sequence of class numbers",
        ),
        (lambda m: UNTYPED.certainty(m, samples="5"), "--samples must be a whole number"),
        (lambda m: UNTYPED.certainty(m, samples=True), "--samples must be a whole number"),
        (lambda m: UNTYPED.certainty(m, samples=10, seed=1.5), "--seed must be a whole number"),
        (lambda m: UNTYPED.certainty(m, samples=10, dataset=None), "dataset must be a dataset"),
    ],
)
def test_wrong_arguments_are_one_line_errors_before_any_work(
    call: Callable[[nn.Module], object],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: AttributeError or TypeError from deep inside, some after the search had run;
    now each argument is checked first and named."""
    monkeypatch.chdir(tmp_path)
    refused(lambda: call(softmax_model()), message)
    assert list(tmp_path.iterdir()) == []


def test_none_for_options_and_hooks_means_their_defaults() -> None:
    """``options=None`` (and ``hooks=None``) is taken as the default, not an AttributeError."""
    result = identikit.search(softmax_model(), TINY, options=None, hooks=None)
    assert result.folder is None and len(result.runs) == 1


def test_judge_and_report_check_their_arguments(tmp_path: Path) -> None:
    """A name given as one string is not iterated letter by letter, and the report's
    arguments are checked before a page is built."""
    identikit.search(softmax_model(), TINY, out=tmp_path / "sweep")
    before = sorted(p.name for p in (tmp_path / "sweep").iterdir())
    sweep = tmp_path / "sweep"
    refused(lambda: identikit.judge(None), "folder must be a path")  # type: ignore[arg-type]
    refused(lambda: identikit.judge(sweep, "softmax"), "judges must be a sequence of names")
    refused(lambda: identikit.judge(sweep, ["softmax"], setup="x"), "setup must be a JudgeSetup")  # type: ignore[arg-type]
    refused(lambda: identikit.report(None), "folder must be a path")  # type: ignore[arg-type]
    refused(lambda: identikit.report(sweep, models="m.pt"), "models must be a sequence")
    refused(lambda: identikit.report(sweep, animate="square"), "animate must be True, False")
    refused(lambda: identikit.report(sweep, trust_code="no"), "trust_code must be True or False")  # type: ignore[arg-type]
    assert sorted(p.name for p in sweep.iterdir()) == before


@pytest.mark.parametrize("spec", [None, 3, Path("mnist")])
def test_load_images_names_a_dataset_by_a_string(spec: object) -> None:
    """Before: ``load_images(None)`` raised AttributeError ('NoneType' has no 'partition')."""
    refused(lambda: identikit.load_images(spec), "a dataset is named by a string")  # type: ignore[arg-type]
    refused(lambda: identikit.load_dataset(spec), "a dataset is named by a string")  # type: ignore[arg-type]


def test_a_dataset_root_must_be_a_path() -> None:
    refused(lambda: identikit.load_images("mnist", root=3), "root must be a path")  # type: ignore[arg-type]


def test_loading_training_and_evaluating_name_a_wrong_argument() -> None:
    """Before: TypeError from os.fspath (load_classifier(None)), AttributeError from
    ``None.config`` (train) and from ``None.parameters`` (evaluate)."""
    refused(lambda: identikit.load_classifier(None), "model must be a path")  # type: ignore[arg-type]
    refused(lambda: identikit.load_classifier(""), "model: an empty path")
    refused(lambda: identikit.train(None), "spec must be a TrainSpec")  # type: ignore[arg-type]
    images, labels = np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.int64)
    refused(
        lambda: identikit.evaluate(None, images, labels),  # type: ignore[arg-type]
        "model must be a Classifier, a torch.nn.Module",
    )


def test_evaluate_takes_a_classifier_a_model_file_or_a_module(tmp_path: Path) -> None:
    """Before: ``identikit.evaluate(classifier, images, labels)`` raised AttributeError
    ('Classifier' object has no attribute 'parameters'), and a model file was not taken."""
    model = small_model(tmp_path / "softmax.pt")
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), np.arange(30) % 10
    classifier = load_classifier(model, device="cpu")
    by_classifier = identikit.evaluate(classifier, images, labels)
    by_file = identikit.evaluate(model, images, labels)
    by_str = identikit.evaluate(str(model), images[:, None], labels)  # (N, 1, H, W) too
    by_module = identikit.evaluate(softmax_model(), images, labels)
    assert sum(map(sum, by_classifier.confusion)) == 30
    assert by_classifier == by_file == by_str == by_module


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 28, 28), np.float32), np.zeros(4, np.int64), "images must be uint8"),
        ([[0]], np.zeros(1, np.int64), "images must be a NumPy array"),
        (np.zeros((4, 28), np.uint8), np.zeros(4, np.int64), "images must be (N, C, H, W)"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros(3, np.int64), "4 images but 3 labels"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros(4), "labels must be one class number"),
        (np.zeros((4, 28, 28), np.uint8), [0, 1, 2, 3], "labels must be a NumPy array"),
        (np.zeros((4, 28, 28), np.uint8), np.full(4, -1), "labels must be class numbers from 0"),
        (np.zeros((4, 28, 28), np.uint8), np.full(4, 10), "has 10 classes; the data has labels"),
        (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), "nothing to evaluate on"),
        (np.zeros((2, 1, 8, 8), np.uint8), np.zeros(2, np.int64), "expected images of shape"),
    ],
)
def test_evaluate_refuses_wrong_images_and_labels_in_one_line(
    model_file: Path, images: object, labels: object, message: str
) -> None:
    """Each wrong argument is an IdentikitError naming it, whatever the model's form (before:
    a Classifier raised AttributeError first, a float image was scored as near-black)."""
    for model in (load_classifier(model_file, device="cpu"), model_file):
        refused(lambda: identikit.evaluate(model, images, labels), message)  # noqa: B023


# --- Every class by default (issue 29) ----------------------------------------------------------


def test_search_with_classes_none_searches_every_class_of_a_module() -> None:
    """``classes=None`` (the default) is every class of the model: a 12-class module is
    searched on its 12; ``digits=`` still names classes, as ``classes=`` does."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 12)).eval()
    quick: dict[str, Any] = {"runs": 1, "max_queries": 41, "strategy_settings": {"candidates": 20}}
    result = identikit.search(module, identikit.SweepConfig(classes=None, **quick))
    assert result.config.digits == tuple(range(12))
    assert [run.digit for run in result.runs] == list(range(12))
    assert identikit.search(module, identikit.SweepConfig(**quick)).config == result.config
    named = identikit.search(module, identikit.SweepConfig(classes=(0, 11), **quick))
    old = identikit.search(module, identikit.SweepConfig(digits=(0, 11), **quick))
    assert named.config == old.config and named.summary == old.summary
    refused(
        lambda: identikit.search(module, identikit.SweepConfig(classes=(12,), **quick)),
        "outside the model's 12 classes",
    )


def test_reconstruct_and_compare_with_no_classes_take_every_class() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 5)).eval()
    drawn = identikit.reconstruct(module, reconstruction_config(runs=1, steps=2))
    assert drawn.config.digits == (0, 1, 2, 3, 4)
    compared = identikit.compare(
        module, identikit.Comparison(("square",), digits=None, runs=1, max_queries=41)
    )
    assert compared.sweeps["square"].config.digits == (0, 1, 2, 3, 4)


def test_a_search_result_names_its_classes_in_a_notebook() -> None:
    """Before: the table's rows were numbers and its title said "runs per class" whatever
    the classes; now each row is the class's number and name, and "digit" only for digits."""
    names = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    shape = identikit.ImageShape(3, 12, 10)
    torch.manual_seed(2)
    model = identikit.Classifier(
        build_model("softmax", 10, shape),
        identikit.ModelInfo(name="c", sha256="c", input_shape=shape, class_names=names),
    )
    page = identikit.search(model, SMALL)._repr_html_()
    assert "<td>0 plane</td>" in page and "<td>3 cat</td>" in page and "<td>7 horse</td>" in page
    assert "runs per class" in page and "digit" not in page
    digits = identikit.search(softmax_model(), SMALL)._repr_html_()
    assert "runs per digit" in digits and "<th>digit</th>" in digits


def test_a_verdict_shows_each_judge_s_own_accuracy(tmp_path: Path) -> None:
    info = {"accuracy": 0.923, "test_images": 10000, "dataset": "mnist", "kind": "built-in"}
    verdict = {"judges": {"mlp": 0.4, "old": 0.2}, "nearest_neighbour": 0.5}
    result = identikit.JudgeResult(tmp_path, {**verdict, "judge_info": {"mlp": info}})
    page = result._repr_html_()
    assert "<td>mlp</td><td>40%</td><td>92.3% on 10,000 test images of mnist (built-in)</td>" in (
        page
    )
    assert "<td>old</td><td>20%</td><td>-</td>" in page
