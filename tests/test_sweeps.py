"""Resumable sweeps: pause anywhere, kill -9, a full disk, resume to identical results; refusals to
mix sweeps or engines; a finished sweep rebuilds what it lost; and the manifold prior given its
subspace."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from identikit import api
from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.base.safe_files import read_regular
from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.data.datasets import MNIST_SHAPE
from identikit.data.images import load_images
from identikit.engines.chunks import CPU_CHUNK_VALUES
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.models.export import onnx_bytes
from identikit.models.info import ModelInfo
from identikit.models.preprocessing import Preprocessing
from identikit.reports.replay import replay_first_runs
from identikit.strategies import STRATEGIES, PriorInputs, PriorNeeds, RunHooks, Subspace, base
from identikit.sweeps.experiment import SweepConfig, identity_differences, sweep_identity
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.records import read_identikits, read_results
from identikit.sweeps.sweep import (
    SHOWN_CLASSES,
    SweepOptions,
    best_text,
    size_line,
    sweep_to_folder,
)
from identikit.sweeps.sweep_state import STATE_FILE
from identikit.sweeps.training_data import prior_inputs, training_dataset
from tests.helpers import (
    CONFIG,
    DEVICES,
    assert_clean_error,
    classifier,
    make_digits,
    run_main,
    same_results,
    search_args,
    stop_after,
    toy_linear,
    write_idx_folder,
)

QUIET = SweepOptions(progress=False)


@pytest.mark.parametrize("device", DEVICES)
def test_pause_anywhere_then_resume_gives_identical_results(
    device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU too: the runs' generators and the model's scores do not depend on where the
    sweep was paused."""
    # 2 runs per group (a GPU's too): pauses fall mid-iteration
    monkeypatch.setattr(base, "GROUP_IMAGES", 60)
    monkeypatch.setattr(base, "GPU_GROUP_IMAGES", 60)
    whole = sweep_to_folder(classifier(device), CONFIG, tmp_path / "whole", options=QUIET)
    assert whole.results is not None and not whole.resumed
    total_commits = sum(r["iterations"] for r in whole.results["runs"]) // 2
    for pause_after in (1, 4, total_commits // 2):
        folder = tmp_path / f"paused-{pause_after}"
        paused = sweep_to_folder(
            classifier(device),
            CONFIG,
            folder,
            hooks=RunHooks(should_stop=stop_after(pause_after)),
            options=QUIET,
        )
        assert paused.results is None and (folder / STATE_FILE).is_file()
        assert not (folder / "results.json").exists()
        resumed = sweep_to_folder(classifier(device), CONFIG, folder, options=QUIET)
        assert resumed.resumed and resumed.results is not None
        same_results(tmp_path / "whole", folder)


def test_finished_sweep_is_not_redone(tmp_path: Path) -> None:
    sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET)
    again = classifier()
    outcome = sweep_to_folder(again, CONFIG, tmp_path, options=QUIET)
    assert outcome.already_done and outcome.results is not None
    assert again.queries == 0
    (tmp_path / STATE_FILE).unlink()  # results alone still identify the sweep
    assert sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET).already_done


def test_different_settings_are_refused(tmp_path: Path) -> None:
    sweep_to_folder(
        classifier(), CONFIG, tmp_path, hooks=RunHooks(should_stop=stop_after(2)), options=QUIET
    )
    other = SweepConfig(**{**CONFIG.__dict__, "runs": 4, "strategy_settings": {"candidates": 31}})
    with pytest.raises(
        DifferentSweepError, match=r"different sweep .*--candidates: 30 -> 31.*--runs: 3 -> 4"
    ):
        sweep_to_folder(classifier(), other, tmp_path, options=QUIET)
    with pytest.raises(IdentikitError, match=r"--model: toy -> other"):
        another = Classifier(toy_linear(scale=0.02), ModelInfo(sha256="other"))
        sweep_to_folder(another, CONFIG, tmp_path, options=QUIET)
    # The refused calls left the saved state as it was: the original sweep still resumes.
    assert sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET).resumed


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(os.urandom(100))
    with pytest.raises(IdentikitError, match=r"unreadable.*delete it"):
        sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET)


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    c = classifier()
    with pytest.raises(IdentikitError, match="cannot create output folder"):
        sweep_to_folder(c, CONFIG, tmp_path / "file" / "sub", options=QUIET)
    assert c.queries == 0  # refused before any work


def test_full_disk_mid_sweep_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tmp_path / "whole"
    quiet = SweepOptions(progress=False)
    sweep_to_folder(classifier(), CONFIG, whole, options=quiet)
    folder = tmp_path / "cut"
    stop = RunHooks(should_stop=stop_after(3))
    sweep_to_folder(classifier(), CONFIG, folder, hooks=stop, options=quiet)
    saved = (folder / STATE_FILE).read_bytes()
    real_fsync, calls = os.fsync, iter(range(10**6))

    def fills_up(fd: int) -> None:
        if next(calls) >= 1:  # the write probe passes, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("identikit.base.atomic.os.fsync", fills_up)
    with pytest.raises(IdentikitError, match="No space left on device"):
        sweep_to_folder(
            classifier(), CONFIG, folder, options=SweepOptions(progress=False, save_every=0.0)
        )
    assert (folder / STATE_FILE).read_bytes() == saved  # the last good state is intact
    monkeypatch.setattr("identikit.base.atomic.os.fsync", real_fsync)
    assert sweep_to_folder(classifier(), CONFIG, folder, options=quiet).resumed
    same_results(whole, folder)


# --- A finished or paused folder, resumed ----------------------------------------------------


SWEEP = SweepConfig(
    digits=(0, 1),
    runs=2,
    strategy_settings={"candidates": 20},
    max_queries=400,
    patience=5 * 20,  # 5 iterations of 20 candidates
    seed=3,
)


def test_resuming_with_another_engine_is_refused_unless_allowed(
    model_file: Path, tmp_path: Path
) -> None:
    def classifier(chunk: int) -> Any:
        return load_classifier(
            model_file, device="cpu", engine=EngineOptions(backend="eager", chunk_size=chunk)
        )

    out = tmp_path / "out"
    quiet = SweepOptions(progress=False)
    paused = sweep_to_folder(
        classifier(64), SWEEP, out, hooks=RunHooks(should_stop=stop_after(1)), options=quiet
    )
    assert paused.results is None
    with pytest.raises(DifferentSweepError, match=r"--chunk-size 64.*--allow-engine-change"):
        sweep_to_folder(classifier(32), SWEEP, out, options=quiet)
    # The same engine resumes as before.
    allowed = SweepOptions(progress=False, allow_engine_change=True)
    done = sweep_to_folder(classifier(32), SWEEP, out, options=allowed)
    assert done.results is not None and done.resumed
    assert done.rebuilt == []  # a resumed sweep writes its outputs; it rebuilds nothing
    assert [e["chunk_size"] for e in done.results["engines"]] == [64, 32]
    assert read_results(out)["engines"] == done.results["engines"]


@pytest.mark.parametrize("lost", ["grid.png", "identikits.npz", "results.json", "all"])
def test_a_finished_sweep_rebuilds_what_is_missing(
    copy: Path, model_file: Path, finished: Path, lost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    names = ["grid.png", "identikits.npz", "results.json"] if lost == "all" else [lost]
    for name in names:
        (sweep / name).unlink()
    code, _, err = run_main(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert f"rebuilt {', '.join(sorted(names))} of the finished sweep" in err
    for name in names:
        assert (sweep / name).is_file()
    results = read_results(sweep)
    images, _ = read_identikits(sweep, results)
    original = read_results(finished / "sweep")
    assert [r["confidence"] for r in results["runs"]] == [r["confidence"] for r in original["runs"]]
    assert np.array_equal(images, read_identikits(finished / "sweep", original)[0])
    assert read_regular(sweep / "grid.png").startswith(b"\x89PNG")


def test_a_damaged_grid_is_rebuilt_without_state(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    (sweep / STATE_FILE).unlink()
    (sweep / "grid.png").write_bytes(b"half a png")
    code, _, err = run_main(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert read_regular(sweep / "grid.png").startswith(b"\x89PNG")


def test_lost_identikits_without_state_are_a_clear_error(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    (sweep / STATE_FILE).unlink()
    (sweep / "identikits.npz").unlink()
    code, _, err = run_main(capsys, *search_args(model_file, sweep))
    assert_clean_error(code, err, "identikits.npz", "delete")


# --- The real thing: a CLI sweep killed with SIGKILL or paused with Ctrl-C, then resumed ---


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained CNN: slow enough on CPU for a sweep to be interrupted mid-way."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "cnn.pt"
    save_checkpoint(path, build_model("cnn"), architecture="cnn", metadata={})
    return path


def slow_search_argv(model: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "identikit",
        "search",
        "--model",
        str(model),
        "--out",
        str(out),
        "--digits",
        "0-9",
        "--runs",
        "1",
        "--candidates",
        "50",
        "--max-queries",
        "1001",
        "--patience",
        "50000",  # 1000 iterations of 50 candidates
        "--target",
        "0.999999",
        "--save-every",
        "0.1",
        "--no-progress",
        "--device",
        "cpu",
    ]


def start_and_interrupt(model: Path, out: Path, sig: int) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        slow_search_argv(model, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = out / STATE_FILE
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more saves
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def whole_sweep(slow_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted sweep every interrupted one is compared with."""
    out = tmp_path_factory.mktemp("whole")
    whole = subprocess.run(
        slow_search_argv(slow_model, out), capture_output=True, text=True, timeout=300, check=False
    )
    assert whole.returncode == 0, whole.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_cli_sweep_resumes_to_identical_results(
    slow_model: Path, whole_sweep: Path, tmp_path: Path, sig: int
) -> None:
    cut = start_and_interrupt(slow_model, tmp_path / "cut", sig)
    assert cut.returncode != 0, "the sweep finished before it could be interrupted"
    assert not (tmp_path / "cut" / "results.json").exists()
    if sig != signal.SIGKILL:  # Ctrl-C and SIGTERM alike: saved, the resume command said
        assert cut.returncode == 128 + sig
        assert "Resume with" in cut.stderr and "identikit search" in cut.stderr
        assert "Traceback" not in cut.stderr
    resumed = subprocess.run(
        slow_search_argv(slow_model, tmp_path / "cut"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    same_results(whole_sweep, tmp_path / "cut")


# --- The priors' inputs -----------------------------------------------------------------------


MANIFOLD = SweepConfig(
    digits=(0, 1),
    runs=1,
    strategy="gradient",
    strategy_settings={"priors": "manifold,blur", "manifold_components": 3},
    max_queries=5,
)


def test_a_sweep_gives_the_manifold_prior_its_subspace(tmp_path: Path) -> None:
    c = classifier()
    with pytest.raises(IdentikitError, match="manifold prior needs"):
        sweep_to_folder(c, MANIFOLD, tmp_path / "none", options=QUIET)
    assert c.queries == 0 and not (tmp_path / "none").exists()  # refused before any work
    subspace = Subspace(torch.zeros(28 * 28), torch.eye(28 * 28)[:, :3])
    heard: list[int] = []
    outcome = sweep_to_folder(
        classifier(),
        MANIFOLD,
        tmp_path / "given",
        hooks=RunHooks(on_commit=lambda state: heard.append(int(state.iterations.sum()))),
        priors=PriorInputs(subspace),
        options=QUIET,
    )
    assert outcome.results is not None and heard[-1] == 8  # 2 runs x 4 steps of 1 query
    # Recorded as the user gave it: the subspace is an input, not a setting.
    assert outcome.results["settings"]["strategy_settings"]["priors"] == "manifold,blur"
    assert "subspace" not in outcome.results["settings"]["strategy_settings"]


def test_prior_inputs_read_the_training_data_only_when_asked(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prior_inputs(PriorNeeds(), "mnist", empty) == PriorInputs()  # nothing read
    folder = write_idx_folder(tmp_path / "digits", train=120)
    inputs = prior_inputs(MANIFOLD.spec.needs(), f"idx:{folder}")
    images, _ = make_digits(120)
    assert inputs.subspace is not None
    torch.testing.assert_close(inputs.subspace.mean, Subspace.of_images(images, 3).mean)
    assert inputs.subspace.components == 3


def test_the_manifold_prior_learns_from_the_data_a_checkpoint_was_trained_on(
    tmp_path: Path,
) -> None:
    """A colour model's checkpoint records its dataset (an npz file here); the manifold prior
    learns its subspace from that file's training images, not MNIST's 784-value digits (which
    the 3 x 8 x 8 model would refuse), in a search and in its replay alike."""
    shape = ImageShape(3, 8, 8)
    rng = np.random.default_rng(0)
    data = tmp_path / "colour.npz"
    np.savez(
        data,
        images=rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8),
        labels=np.arange(60) % 10,
    )
    path = tmp_path / "colour.pt"
    torch.manual_seed(0)
    model = build_model("softmax", 10, shape)
    metadata = {"dataset": f"npz:{data}"}
    save_checkpoint(path, model, architecture="softmax", metadata=metadata, input_shape=shape)
    colour = load_classifier(path, device="cpu")
    assert training_dataset(colour.info) == f"npz:{data}"
    assert training_dataset(ModelInfo()) == "mnist"  # a model that records none: MNIST
    result = api.search(colour, MANIFOLD, out=tmp_path / "sweep")
    assert result.images.shape == (2, 3, 8, 8)
    inputs = prior_inputs(MANIFOLD.spec.needs(), training_dataset(colour.info))
    assert inputs.subspace is not None and inputs.subspace.pixels == shape.size
    learnt = Subspace.of_images(load_images(f"npz:{data}").train_images, 3)
    torch.testing.assert_close(inputs.subspace.mean, learnt.mean)
    # The replay rebuilds the same prior from the same model and draws the same identikits.
    replays = replay_first_runs(colour, read_sweep_folder(tmp_path / "sweep"))
    assert [r.digit for r in replays] == [0, 1] and all(r.faithful for r in replays)


def test_the_manifold_prior_refuses_images_too_large_to_learn_from() -> None:
    images = np.zeros((4, 3, 40, 40), dtype=np.uint8)  # 4,800 values
    with pytest.raises(IdentikitError, match="at most 4,096 values; these have 4,800"):
        Subspace.of_images(images, 3)


# --- Any image shape --------------------------------------------------------------------------


def shaped_classifier(shape: ImageShape, seed: int = 0) -> Classifier:
    """A seeded softmax model of ``shape`` as a classifier (the registry's, built for it)."""
    torch.manual_seed(seed)
    model = build_model("softmax", 10, shape)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(20.0)  # sure enough to converge on within a small budget
    return Classifier(model, ModelInfo(name=f"{shape}.pt", sha256=str(shape), input_shape=shape))


SHAPED = SweepConfig(digits=(0, 4), runs=2, strategy_settings={"candidates": 20}, max_queries=600)


@pytest.mark.parametrize(
    ("shape", "stored"),
    [
        (ImageShape(3, 8, 8), (4, 3, 8, 8)),
        (ImageShape(1, 8, 8), (4, 8, 8)),  # grey: the one channel implied, as for MNIST
        (ImageShape(2, 5, 7), (4, 2, 5, 7)),
    ],
)
def test_sweeps_of_any_shape_pause_resume_and_read_back(
    shape: ImageShape, stored: tuple[int, ...], tmp_path: Path
) -> None:
    whole = sweep_to_folder(shaped_classifier(shape), SHAPED, tmp_path / "whole", options=QUIET)
    assert whole.results is not None
    assert whole.results["version"] == 2 and whole.results["model"]["input_shape"] == [*shape.dims]
    with np.load(tmp_path / "whole" / "identikits.npz") as npz:
        assert npz["images"].shape == stored and npz["images"].dtype == np.float32
    read = read_sweep_folder(tmp_path / "whole")
    assert read.shape == shape and read.images.shape == stored
    assert read.pixels.shape == shape.batch(4)
    # Paused after two groups, resumed: the same identikits and results.
    cut = tmp_path / "cut"
    paused = sweep_to_folder(
        shaped_classifier(shape),
        SHAPED,
        cut,
        hooks=RunHooks(should_stop=stop_after(2)),
        options=QUIET,
    )
    assert paused.results is None and (cut / STATE_FILE).exists()
    resumed = sweep_to_folder(shaped_classifier(shape), SHAPED, cut, options=QUIET)
    assert resumed.resumed and resumed.results is not None
    same_results(tmp_path / "whole", cut)


def test_a_colour_sweep_draws_its_grid_in_colour(tmp_path: Path) -> None:
    shape = ImageShape(3, 8, 8)
    outcome = sweep_to_folder(shaped_classifier(shape), SHAPED, tmp_path / "s", options=QUIET)
    assert outcome.results is not None
    with Image.open(tmp_path / "s" / "grid.png") as grid:
        pixels = np.asarray(grid.convert("RGB")).astype(int)
    # Coloured pixels: channels that differ, which no grey picture has.
    assert (np.ptp(pixels, axis=2) > 40).sum() > 4 * 8 * 8


def test_every_strategy_sweeps_a_colour_model(tmp_path: Path) -> None:
    shape = ImageShape(3, 6, 10)
    for name in sorted(STRATEGIES):
        config = SweepConfig(digits=(0, 1), runs=1, strategy=name, max_queries=100)
        outcome = sweep_to_folder(shaped_classifier(shape), config, tmp_path / name, options=QUIET)
        assert outcome.results is not None, name
        assert read_sweep_folder(tmp_path / name).images.shape == (2, 3, 6, 10), name


def test_a_strategy_that_cannot_do_a_shape_is_refused_before_any_query(tmp_path: Path) -> None:
    colour = shaped_classifier(ImageShape(3, 8, 8), seed=1)
    config = SweepConfig(
        digits=(0,),
        runs=1,
        strategy="gradient",
        strategy_settings={"priors": "colour"},
        max_queries=20,
    )
    grey = shaped_classifier(ImageShape(1, 8, 8), seed=1)
    with pytest.raises(IdentikitError, match="colour prior needs images of 3 channels"):
        sweep_to_folder(grey, config, tmp_path / "grey", options=QUIET)
    assert grey.queries == 0 and not (tmp_path / "grey").exists()
    assert sweep_to_folder(colour, config, tmp_path / "colour", options=QUIET).results


def test_settings_that_depend_on_the_image_are_recorded_for_its_shape(tmp_path: Path) -> None:
    """The square's side is half the image's shorter side unless given: 14 on MNIST, as it
    always was, 3 on 7 x 9 images; the record says which."""
    config = SweepConfig(digits=(0,), runs=1, strategy="square", max_queries=30)
    mnist = sweep_to_folder(classifier(), config, tmp_path / "mnist", options=QUIET).results
    small = sweep_to_folder(
        shaped_classifier(ImageShape(3, 7, 9)), config, tmp_path / "small", options=QUIET
    ).results
    assert mnist is not None and small is not None
    assert mnist["settings"]["strategy_settings"]["side"] == 14
    assert small["settings"]["strategy_settings"]["side"] == 3
    # Read back, the recorded settings are a valid sweep that resumes as the same one.
    assert read_sweep_folder(tmp_path / "small").config.strategy_settings["side"] == 3
    again = sweep_to_folder(
        shaped_classifier(ImageShape(3, 7, 9)), config, tmp_path / "small", options=QUIET
    )
    assert again.already_done


def test_a_version_1_folder_is_read_and_recalled_as_mnist_shaped(tmp_path: Path) -> None:
    """results.json written before shapes were recorded: its sweeps were of MNIST's images."""
    folder = tmp_path / "old"
    outcome = sweep_to_folder(classifier(), CONFIG, folder, options=QUIET)
    assert outcome.results is not None
    old = {**outcome.results, "version": 1}
    old["model"] = {k: v for k, v in old["model"].items() if k != "input_shape"}
    (folder / "results.json").write_text(json.dumps(old))
    assert read_sweep_folder(folder).shape == MNIST_SHAPE
    again = sweep_to_folder(classifier(), CONFIG, folder, options=QUIET)
    assert again.already_done and again.results is not None and again.results["version"] == 1


def test_a_square_sweep_of_an_imagenet_sized_onnx_model(tmp_path: Path) -> None:
    """Issue 16, item 7's mechanics: 3 x 224 x 224 and 1,000 classes, read from the ONNX file's
    static dimensions, swept by square over 10 classes x 1 run within a fixed budget, in small
    chunks. (The ResNet-18's peak memory is in benchmarks/large_images.py.)"""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 8, stride=8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 1000),
    ).eval()
    path = tmp_path / "imagenet-shaped.onnx"
    path.write_bytes(onnx_bytes(model, torch.rand(2, 3, 224, 224)))
    loaded = load_classifier(path)
    assert loaded.info.input_shape == ImageShape(3, 224, 224) and loaded.num_classes == 1000
    assert loaded.chunk_size * loaded.info.input_shape.size <= CPU_CHUNK_VALUES
    config = SweepConfig(digits=tuple(range(10)), runs=1, strategy="square", max_queries=40)
    outcome = sweep_to_folder(loaded, config, tmp_path / "sweep", options=QUIET)
    assert outcome.results is not None
    runs = outcome.results["runs"]
    assert [r["digit"] for r in runs] == list(range(10))
    assert all(r["queries"] <= 40 for r in runs) and loaded.queries == sum(
        r["queries"] for r in runs
    )
    assert outcome.results["model"]["input_shape"] == [3, 224, 224]
    assert outcome.results["settings"]["strategy_settings"]["side"] == 112
    folder = read_sweep_folder(tmp_path / "sweep")
    assert folder.images.shape == (10, 3, 224, 224)
    # The images are those the model scored: the recorded confidences are theirs.
    recorded = torch.tensor([r["confidence"] for r in runs])
    scored = loaded.probabilities(torch.from_numpy(folder.pixels).float())
    assert torch.allclose(scored[torch.arange(10), torch.arange(10)], recorded, atol=1e-5)


# --- Conventions are part of a sweep's identity --------------------------------------------------

RGB_SHAPE = ImageShape(3, 8, 8)
IMAGENET_LIKE = Preprocessing(mean=(0.5, 0.45, 0.4), std=(0.25, 0.2, 0.3), outputs="logits")


def conventional(preprocessing: Preprocessing, shape: ImageShape = RGB_SHAPE) -> Classifier:
    """:func:`shaped_classifier`'s model under ``preprocessing``, one hash whatever the
    conventions (as an ONNX file's is: the options, not the file, set them)."""
    model = shaped_classifier(shape).model
    info = ModelInfo(name="m.onnx", sha256="m", input_shape=shape, preprocessing=preprocessing)
    return Classifier(model, info)


def test_a_sweep_resumed_under_other_conventions_is_refused(tmp_path: Path) -> None:
    """Paused with --mean 0.5,0.45,0.4 --std 0.25,0.2,0.3, resumed with --mean 0.1 --std 0.9 (or
    identikit's own, or another range or layout): refused, naming what differs, the state kept;
    the same conventions resume it."""
    paused = sweep_to_folder(
        conventional(IMAGENET_LIKE),
        SHAPED,
        tmp_path,
        hooks=RunHooks(should_stop=stop_after(1)),
        options=QUIET,
    )
    assert paused.results is None
    others = {
        r"--mean: 0.5,0.45,0.4 -> 0.1; --std: 0.25,0.2,0.3 -> 0.9": Preprocessing(
            mean=0.1, std=0.9, outputs="logits"
        ),
        r"--mean: 0.5,0.45,0.4 -> 0.0; --std: 0.25,0.2,0.3 -> 1.0": Preprocessing(),
        r"--input-range: 0,1 -> -1,1": replace(IMAGENET_LIKE, input_range="-1,1"),
        r"--layout: nchw -> nhwc": replace(IMAGENET_LIKE, layout="nhwc"),
        r"--outputs: logits -> probabilities": replace(IMAGENET_LIKE, outputs="probabilities"),
        r"--mean: 0.5,0.45,0.4 -> 0.5,0.45,0.4000001": replace(
            IMAGENET_LIKE, mean=(0.5, 0.45, 0.4000001)
        ),
    }
    for named, preprocessing in others.items():
        with pytest.raises(DifferentSweepError, match=rf"different sweep \({re.escape(named)}\)"):
            sweep_to_folder(conventional(preprocessing), SHAPED, tmp_path, options=QUIET)
    resumed = sweep_to_folder(conventional(IMAGENET_LIKE), SHAPED, tmp_path, options=QUIET)
    assert resumed.resumed and resumed.results is not None


def test_a_sweep_begun_under_identikits_conventions_refuses_others(tmp_path: Path) -> None:
    sweep_to_folder(
        conventional(Preprocessing()),
        SHAPED,
        tmp_path,
        hooks=RunHooks(should_stop=stop_after(1)),
        options=QUIET,
    )
    with pytest.raises(DifferentSweepError, match=r"--mean: 0.0 -> 0.5,0.45,0.4; --std: 1.0 ->"):
        sweep_to_folder(conventional(IMAGENET_LIKE), SHAPED, tmp_path, options=QUIET)


def test_the_identity_of_a_sweep_under_identikits_conventions_is_unchanged() -> None:
    """A sweep of a model that takes pixels as they are has the identity it always had (its
    saved state and cluster plan still resume); other conventions add theirs, exactly."""
    for outputs in (None, "logits", "probabilities"):
        plain = sweep_identity(conventional(Preprocessing(outputs=outputs)), SHAPED)
        assert set(plain) == {"settings", "model_sha256"}
    assert set(sweep_identity(classifier(), CONFIG)) == {"settings", "model_sha256"}
    assert sweep_identity(conventional(IMAGENET_LIKE), SHAPED)["conventions"] == {
        "input_range": "0,1",
        "mean": [0.5, 0.45, 0.4],
        "std": [0.25, 0.2, 0.3],
        "layout": "nchw",
        "outputs": "logits",
        "input_shape": [3, 8, 8],
    }


def test_another_input_shape_is_another_sweep() -> None:
    """A dynamic model's --input-shape, with its conventions: named as what differs."""
    saved = sweep_identity(conventional(IMAGENET_LIKE), SHAPED)
    wider = sweep_identity(conventional(IMAGENET_LIKE, ImageShape(3, 8, 9)), SHAPED)
    assert "--input-shape: 3,8,8 -> 3,8,9" in identity_differences(saved, wider)


def test_a_finished_sweep_without_state_is_recalled_under_its_conventions(
    tmp_path: Path,
) -> None:
    """Its results.json describes the conventions (to six significant digits): the same ones
    recall it, other ones are refused."""
    thirds = replace(IMAGENET_LIKE, mean=(1 / 3, 0.45, 0.4))
    sweep_to_folder(conventional(thirds), SHAPED, tmp_path, options=QUIET)
    (tmp_path / STATE_FILE).unlink()
    assert sweep_to_folder(conventional(thirds), SHAPED, tmp_path, options=QUIET).already_done
    with pytest.raises(DifferentSweepError, match=r"--mean: 0.333333,0.45,0.4 -> 0.5,0.45,0.4"):
        sweep_to_folder(conventional(IMAGENET_LIKE), SHAPED, tmp_path, options=QUIET)
    with pytest.raises(DifferentSweepError, match=r"--mean: 0.333333,0.45,0.4 -> 0; "):
        sweep_to_folder(conventional(Preprocessing()), SHAPED, tmp_path, options=QUIET)


# --- Every class by default (issue 29) ----------------------------------------------------------


def test_a_large_sweep_says_its_size_budget_and_time_before_it_starts() -> None:
    """Sweeps of more than 100 runs are announced in one line: runs, queries (runs x
    max_queries) and, where the engine's rate was measured, the longest they can take."""
    assert size_line(SweepConfig(runs=10, max_queries=100).for_classes(10)) is None  # 100 runs
    assert size_line(SweepConfig(runs=1)) is None  # classes not yet known
    config = SweepConfig(runs=10, max_queries=100_000).for_classes(1000)
    assert size_line(config) == (
        "sweep of 10,000 runs (1,000 classes x 10 runs), "
        "budget 1,000,000,000 model queries (100,000 a run)"
    )
    timed = size_line(config, 2_000.0)
    assert timed is not None and timed.endswith("; at most 5.8 days at 2,000 images/s")
    small = SweepConfig(runs=3, max_queries=1_000).for_classes(50)
    assert size_line(small, 5_000.0, sweeps=2) == (
        "sweep of 300 runs (50 classes x 3 runs x 2 strategies), budget 300,000 model "
        "queries (1,000 a run); at most 60 s at 5,000 images/s"
    )
    # a gradient step's rate is not the measured scoring rate: no time from it
    gradient = SweepConfig(runs=1, max_queries=1_000, strategy="gradient").for_classes(1000)
    untimed = size_line(gradient, 108.0)
    assert untimed is not None and untimed.endswith(
        "; no time estimate (the engine's rate is for scoring, not gradient steps)"
    )


def test_sweep_to_folder_resolves_every_class_against_the_model(tmp_path: Path) -> None:
    """A config of every class reaches the sweep unresolved; the folder records the model's
    classes, and a class it lacks is refused in one line before anything is written."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5)).eval()
    classifier = Classifier(module, ModelInfo(name="five"))
    quick = SweepConfig(runs=1, max_queries=41, strategy_settings={"candidates": 20})
    outcome = sweep_to_folder(classifier, quick, tmp_path / "all", options=QUIET)
    assert outcome.results is not None
    assert outcome.results["settings"]["digits"] == [0, 1, 2, 3, 4]
    with pytest.raises(IdentikitError, match=r"classes \[5\] are outside the model's 5 classes"):
        sweep_to_folder(classifier, replace(quick, digits=(5,)), tmp_path / "six")
    assert not (tmp_path / "six").exists()


def test_the_progress_line_summarises_many_classes() -> None:
    few = {c: c / 10 for c in range(SHOWN_CLASSES)}
    assert best_text(few).startswith("best 0:0.000 1:0.100 2:0.200")
    many = {c: (c % 100) / 100 for c in range(1000)}
    text = best_text(many)
    assert len(text) < 200, text  # 1,000 classes one by one ran to 14,000 characters
    assert "best of 1,000 classes: min 0.000 median 0.500 max 0.990" in text
    assert text.endswith("lowest 0:0.000 100:0.000 200:0.000 300:0.000 400:0.000")
