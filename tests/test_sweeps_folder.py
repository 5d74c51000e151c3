"""The sweep folder's one reader: what a sweep writes reads back the same, a newer record is
refused, and identikits must have the model's image shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from identikit.base.figures import identikit_grid
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.preprocessing import Preprocessing
from identikit.sweeps.experiment import RESULTS_VERSION, recorded_conventions
from identikit.sweeps.folder import GRID_FILE, SweepFolder, grid_png, read_sweep_folder
from identikit.sweeps.records import IDENTIKITS_FILE, RESULTS_FILE, read_results
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from tests.helpers import CONFIG, classifier, one_line_refusal, rewrite_json


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep of the toy classifier, written by the sweep's own writer."""
    folder = tmp_path_factory.mktemp("sweep") / "s"
    outcome = sweep_to_folder(classifier(), CONFIG, folder, options=SweepOptions(progress=False))
    assert outcome.results is not None
    return folder


def test_a_sweep_folder_reads_back_as_written(sweep: Path) -> None:
    read = read_sweep_folder(sweep)
    assert isinstance(read, SweepFolder) and read.path == sweep
    written = json.loads((sweep / RESULTS_FILE).read_text())
    assert read.results == written  # the summary recomputed from the runs is the one written
    with np.load(sweep / IDENTIKITS_FILE) as npz:
        assert np.array_equal(read.images, npz["images"])
        assert read.digits.tolist() == npz["digits"].tolist()
    assert read.images.dtype == np.float32 and read.shape == MNIST_SHAPE
    assert read.config.layout() == CONFIG.layout()
    assert read.config.strategy == CONFIG.strategy and read.config.target == CONFIG.target
    assert read.confidences == [run["confidence"] for run in written["runs"]]
    assert (sweep / GRID_FILE).read_bytes().startswith(b"\x89PNG")
    assert read_results(sweep) == read.results  # the record's reader alone agrees


def test_no_sweep_is_a_clear_error(tmp_path: Path) -> None:
    one_line_refusal(lambda: read_sweep_folder(tmp_path), "no finished sweep", RESULTS_FILE)


def test_a_newer_sweep_record_is_refused(sweep: Path, tmp_path: Path) -> None:
    copy = tmp_path / "s"
    copy.mkdir()
    for name in (RESULTS_FILE, IDENTIKITS_FILE):
        (copy / name).write_bytes((sweep / name).read_bytes())
    rewrite_json(copy / RESULTS_FILE, lambda r: {**r, "version": RESULTS_VERSION + 1})
    one_line_refusal(
        lambda: read_sweep_folder(copy),
        RESULTS_FILE,
        "newer identikit",
        f"version {RESULTS_VERSION + 1}",
    )
    # results.json always carried its version: one without is damaged, not old.
    rewrite_json(copy / RESULTS_FILE, lambda r: {k: v for k, v in r.items() if k != "version"})
    one_line_refusal(lambda: read_sweep_folder(copy), RESULTS_FILE, "format version")
    rewrite_json(copy / RESULTS_FILE, lambda r: {**r, "version": 0})
    one_line_refusal(lambda: read_sweep_folder(copy), RESULTS_FILE, "version = 0 is out of range")


def test_identikits_must_have_the_models_image_shape(sweep: Path, tmp_path: Path) -> None:
    one_line_refusal(
        lambda: read_sweep_folder(sweep, shape=ImageShape(1, 14, 14)),
        IDENTIKITS_FILE,
        "are 1x28x28 images",
        "not 1x14x14",
    )
    assert read_sweep_folder(sweep, shape=MNIST_SHAPE).shape == MNIST_SHAPE
    # The shape results.json records is the one identikits.npz must hold.
    copy = tmp_path / "s"
    copy.mkdir()
    for name in (RESULTS_FILE, IDENTIKITS_FILE):
        (copy / name).write_bytes((sweep / name).read_bytes())
    rewrite_json(
        copy / RESULTS_FILE, lambda r: {**r, "model": {**r["model"], "input_shape": [3, 28, 28]}}
    )
    one_line_refusal(lambda: read_sweep_folder(copy), IDENTIKITS_FILE, "expected (9, 3, 28, 28)")


def test_the_record_states_the_shape_and_only_other_conventions(sweep: Path) -> None:
    """Version 2 records the image shape; identikit's own conventions (pixels in [0, 1] as
    given) are not written, so their wording never changes a sweep's bytes."""
    model = read_results(sweep)["model"]
    assert model["input_shape"] == [1, 28, 28] and "preprocessing" not in model
    assert recorded_conventions(Preprocessing(outputs="logits")) is None
    scaled = recorded_conventions(Preprocessing(input_range="-1,1", mean=0.5, std=0.25))
    assert scaled is not None and "-1,1" in scaled and "0.5" in scaled and "0.25" in scaled


def test_a_reconstructions_grid_marks_runs_at_the_readmes_measure() -> None:
    """A reconstruction stops at 0.9999, but its runs count as converged from 0.99: grid.png
    labelled a run at 0.998 red (not converged)."""
    images = np.full((2, 28, 28), 0.5, dtype=np.float32)
    digits = np.array([0, 1])
    results = {
        "model": {"name": "m.pt"},
        "settings": {"strategy": "reconstruct", "target": 0.9999},
        "runs": [{"confidence": 0.998}, {"confidence": 0.95}],
    }
    title = "m.pt: reconstruct"
    at_measure = identikit_grid(images, digits, [0.998, 0.95], target=0.99, title=title)
    at_stop = identikit_grid(images, digits, [0.998, 0.95], target=0.9999, title=title)
    assert at_measure != at_stop
    assert grid_png(results, images, digits) == at_measure
    # a search's own --target is its measure
    results["settings"] = {"strategy": "square", "target": 0.9999}
    searched = identikit_grid(images, digits, [0.998, 0.95], target=0.9999, title="m.pt: square")
    assert grid_png(results, images, digits) == searched
