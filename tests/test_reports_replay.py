"""Replays for the animations: only of the model the user names, only when it matches the sweep's
hash, never of a folder's say-so, and saying what they replay."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import hostile_torchscript, read_page, run_main, small_model


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
