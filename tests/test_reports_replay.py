"""Replays for the animations: only of the model the user names, only when it matches the sweep's
hash, never of a folder's say-so, and saying what they replay."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from identikit import api
from identikit.base.shapes import ImageShape
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.reports.replay import why_another_path
from tests.helpers import (
    hostile_torchscript,
    read_page,
    report_search_args,
    rewrite_npz,
    run_main,
    small_model,
)


def test_report_never_loads_the_model_a_folder_names(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared folder's results.json names a TorchScript program, with its true hash: the
    report replays nothing unless the user names a model, and never runs TorchScript
    without --trust-code."""
    marker = tmp_path / "written-by-the-model"
    evil = hostile_torchscript(tmp_path / "evil.pt", marker)
    results_file = copy / "sweep" / "results.json"
    results = json.loads(results_file.read_text())
    results["model"]["path"] = str(evil)
    results["model"]["sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    results_file.write_text(json.dumps(results))
    code, _, err = run_main(capsys, "report", str(copy))
    assert code == 0, err
    assert not marker.exists()
    code, _, err = run_main(capsys, "report", str(copy), "--model", str(evil))
    assert code == 0, err
    assert not marker.exists()
    assert "--trust-code" in (copy / "report.html").read_text()  # why there is no animation


def test_report_replays_only_the_model_named_and_matching(
    copy: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = small_model(tmp_path / "other.pt", seed=5)
    code, _, err = run_main(capsys, "report", str(copy), "--model", str(other))
    assert code == 0, err
    assert "image/gif" not in (copy / "report.html").read_text()
    code, _, err = run_main(capsys, "report", str(copy), "--model", str(model_file))
    assert code == 0, err
    assert "image/gif" in (copy / "report.html").read_text()


def test_replay_says_which_sweep_and_gif_counts_confidence(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(capsys, "report", str(folder), "--model", str(folder / "softmax.pt"))
    assert code == 0, err
    assert f"replaying run 0 of each digit of {folder / 'sweep'} ..." in err
    page = read_page(folder)
    gif = next(i["src"] for i in page.images if i["src"].startswith("data:image/gif"))
    frames = Image.open(io.BytesIO(base64.b64decode(gif.split(",", 1)[1])))
    assert frames.size[1] == 28 * 4 + 18 + 14  # room for the counter under the images


def colour_checkpoint(path: Path, shape: ImageShape) -> Path:
    """A seeded colour network of the registry, saved by the checkpoint writer."""
    torch.manual_seed(4)
    save_checkpoint(
        path,
        build_model("colour-cnn", 10, shape),
        architecture="colour-cnn",
        metadata={},
        input_shape=shape,
    )
    return path


def colourful(picture: Image.Image) -> int:
    """Pixels whose green and blue differ: none in a grey picture, nor in its red labels."""
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    return int((abs(pixels[..., 1] - pixels[..., 2]) > 30).sum())


def test_a_colour_sweep_is_reported_and_replayed_in_colour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = ImageShape(3, 16, 16)
    model = colour_checkpoint(tmp_path / "colour.pt", shape)
    out = tmp_path / "results"
    code, _, err = run_main(capsys, *report_search_args(model, out / "sweep", "--start", "noise"))
    assert code == 0, err
    code, _, err = run_main(
        capsys, "report", str(out), "--model", str(model), "--pngs", str(tmp_path / "pngs")
    )
    assert code == 0, err
    page = read_page(out)
    grid, gif = (
        next(i["src"] for i in page.images if i["src"].startswith(f"data:image/{kind}"))
        for kind in ("png", "gif")
    )
    assert colourful(Image.open(io.BytesIO(base64.b64decode(grid.split(",", 1)[1])))) > 16 * 16
    frames = Image.open(io.BytesIO(base64.b64decode(gif.split(",", 1)[1])))
    # 16 x 16 images at 7 screen pixels a pixel (112 // 16), replayed in colour to the end.
    assert frames.size[1] == 16 * 7 + 18 + 14 and colourful(frames) > 16 * 16
    assert "it ends on the identikit shown above" in page.text
    cards = {row[0]: row for row in page.table("models")}
    assert cards["colour.pt"][2].replace("3x16x16", "", 1).startswith("pixels 0,1")
    assert "images 3x16x16 (C x H x W; conventions: pixels 0,1" in " ".join(page.text.split())
    png = Image.open(tmp_path / "pngs" / "sweep" / "0-0.png")
    assert png.mode == "RGB" and png.size == (16 * 14, 16 * 14)


def test_only_the_strategies_asked_for_are_replayed(copy: Path, model_file: Path) -> None:
    # The copy's sweep is random-masks: asked to animate square alone, the page replays
    # nothing and says why; asked for random-masks, it animates it.
    api.report(copy, models=[model_file], animate=("square",))
    page = (copy / "report.html").read_text()
    assert "image/gif" not in page
    assert "no animation: only sweeps of square were replayed" in page
    api.report(copy, models=[model_file], animate=("random-masks",))
    assert "image/gif" in (copy / "report.html").read_text()


def _flip_first_identikit(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The first identikit (run 0 of the first digit) inverted: a replay cannot end on it."""
    arrays["images"][0] = 1 - arrays["images"][0]
    return arrays


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        ("onnx", "ONNX Runtime scores an image alike in any batch"),
        ("eager", "eager (PyTorch) rounds an image's scores in the last bits by batch"),
    ],
)
def test_a_replay_that_ends_elsewhere_says_why_for_the_sweeps_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str, reason: str
) -> None:
    """Before: every replay that ended elsewhere blamed "the model's arithmetic differs in
    the last bits by batch", also for a sweep scored by ONNX Runtime, which is
    batch-independent (README, Identikits)."""
    model = small_model(tmp_path / "softmax.pt")
    args = report_search_args(model, tmp_path / "sweep")
    code, _, err = run_main(capsys, *[backend if a == "eager" else a for a in args])
    assert code == 0, err
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert results["scoring"]["backend"] == backend
    rewrite_npz(tmp_path / "sweep" / "identikits.npz", _flip_first_identikit)
    code, _, err = run_main(capsys, "report", str(tmp_path), "--model", str(model))
    assert code == 0, err
    text = " ".join(read_page(tmp_path).text.split())
    assert "for digit(s) 0 the replay took another path" in text
    assert reason in text and "arithmetic differs in the last bits by batch" not in text


def test_why_a_replay_differs_follows_the_recorded_engines() -> None:
    """The reason for each record a sweep can leave: resumed on another engine, on a GPU, by
    gradients, by a batch-independent engine, or no engine recorded (an older folder)."""
    onnx = {"backend": "onnx", "precision": "fp32", "chunk_size": 64, "device": "cpu"}
    square = {"settings": {"strategy": "square"}, "scoring": {"backend": "onnx"}}
    assert "another engine" in why_another_path(
        {**square, "engines": [onnx, {**onnx, "backend": "eager"}]}
    )
    assert "ran on cuda:0" in why_another_path({**square, "environment": {"device": "cuda:0"}})
    assert "gradients come from PyTorch" in why_another_path(
        {**square, "settings": {"strategy": "gradient"}}
    )
    assert "alike in any batch" in why_another_path({**square, "engines": [onnx, onnx]})
    assert "not recorded" in why_another_path({"settings": {"strategy": "square"}})
