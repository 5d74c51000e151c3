"""The report command: a page that cannot be opened says where it is, and --pngs writes every
identikit at its true pixels."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from identikit.sweeps.records import read_identikits, read_results
from tests.helpers import assert_clean_error, run_main


def test_open_without_a_browser_says_where_the_page_is(
    swept: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: False)
    code, _, err = run_main(capsys, "report", str(swept), "--no-animation", "--open")
    assert code == 0
    assert f"could not open a browser; the page is {(swept / 'report.html').resolve()}" in err


def test_pngs_of_every_identikit(
    swept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pngs"
    code, stdout, err = run_main(capsys, "report", str(swept), "--no-animation", "--pngs", str(out))
    assert code == 0, err
    results = read_results(swept / "sweep")
    images, _ = read_identikits(swept / "sweep", results)
    names = sorted(p.name for p in (out / "sweep").iterdir())
    assert names == ["0-0.png", "0-1.png", "1-0.png", "1-1.png"]
    for image, run_ in zip(images, results["runs"], strict=True):
        png = Image.open(out / "sweep" / f"{run_['digit']}-{run_['run']}.png")
        assert png.mode == "L" and png.size == (224, 224)
        pixels = np.asarray(png)[::8, ::8]  # nearest scaling: each pixel an 8 x 8 square
        assert np.array_equal(pixels, (image * 255).round().astype(np.uint8))
    assert "4 identikit images" in stdout


def test_pngs_naming_a_file_is_one_line_before_any_work(
    swept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine.txt"
    mine.write_text("user data")
    code, _, err = run_main(capsys, "report", str(swept), "--no-animation", "--pngs", str(mine))
    assert_clean_error(code, err, "--pngs", str(mine), "not a folder")
    assert mine.read_text() == "user data"
