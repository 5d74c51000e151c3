"""What the report page shows, checked in the HTML it writes (one case in headless Chromium):
folders of any kind of result, model cards from the checkpoints in the folder, ceilings,
labels that tell near-certain identikits apart, replays that say what they do, single PNGs and
the nearest real digits."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
import webbrowser
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from identikit.base.figures import animation_gif, confidence_label
from identikit.cli import main
from identikit.data import datasets as data
from identikit.strategies.registry import is_white_box
from identikit.sweeps.records import read_ceiling, read_identikits, read_results
from tests.helpers import CHROMIUM, small_model

CERTAINTY_ROW = {
    "n": 1,
    "mean": 0.1,
    "median": 0.1,
    "above_0.6": 0,
    "above_0.9": 0,
    "above_0.99": 0,
}


class Page(HTMLParser):
    """The text of a page by element: headings, data rows of each table, images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.text = ""
        self._heading: str | None = None
        self._tables: list[str] = []
        self._row: list[str] | None = None
        self._cell: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "h3":
            self._heading = ""
        elif tag == "table":
            self._tables.append(found.get("class") or found.get("id") or "")
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = ""
        elif tag == "th":
            self._row = None  # a header row: not data
        elif tag == "img":
            self.images.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._heading is not None:
            self.headings.append(" ".join(self._heading.split()))
            self._heading = None
        elif tag == "table":
            self._tables.pop()
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._tables:
            self.rows.setdefault(self._tables[-1], []).append(self._row)
            self._row = None

    def handle_data(self, text: str) -> None:
        self.text += text
        if self._heading is not None:
            self._heading += text
        if self._cell is not None:
            self._cell += text

    def table(self, name: str) -> list[list[str]]:
        """The data rows of the table of class (or id) ``name``."""
        return self.rows.get(name, [])


def read_page(folder: Path) -> Page:
    return Page((folder / "report.html").read_text())


def sweep_args(model: Path, out: Path, *extra: str) -> list[str]:
    """A sweep of two digits, two runs each, that takes a second."""
    return [
        "search",
        *("--model", str(model), "--out", str(out), "--digits", "0,1", "--runs", "2"),
        *("--max-queries", "400", "--seed", "3", "--backend", "eager", "--chunk-size", "64"),
        *("--device", "cpu", "--no-progress"),
        *extra,
    ]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model(tmp_path_factory.mktemp("model") / "softmax.pt")


@pytest.fixture(scope="module")
def swept(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with its model file and one finished sweep of it."""
    root = tmp_path_factory.mktemp("swept")
    shutil.copy(model_file, root / "softmax.pt")
    assert main(sweep_args(root / "softmax.pt", root / "sweep", "--candidates", "20")) == 0
    return root


@pytest.fixture
def folder(swept: Path, tmp_path: Path) -> Path:
    """A fresh copy of the swept folder, to add to."""
    return Path(shutil.copytree(swept, tmp_path / "folder"))


# --- 4. every kind of result makes a page -----------------------------------------------------


def test_a_folder_of_certainty_only_makes_a_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    code, _, err = run(capsys, "report", str(tmp_path))
    assert code == 0, err
    page = read_page(tmp_path)
    assert page.table("certainty") == [["blank", "1", "0.100", "0.100", "0.0%", "0.0%", "0.0%"]]
    # No sweep names the model, and certainty.json does not: the page says so, not the folder.
    assert page.headings == ["model not recorded (this folder)"]


def test_an_empty_folder_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "softmax.pt").write_bytes(b"not results")
    code, _, err = run(capsys, "report", str(tmp_path))
    assert code == 2 and "holds no results" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def ceilinged(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a linear model and, in ``c``, what ``identikit ceiling`` wrote of it."""
    root = tmp_path_factory.mktemp("ceilinged")
    model = Path(shutil.copy(model_file, root / "linear.pt"))
    assert main(["ceiling", "--model", str(model), "--out", str(root / "c")]) == 0
    return root


def test_ceiling_writes_a_record_and_the_page_shows_it(
    ceilinged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = Path(shutil.copytree(ceilinged, tmp_path / "copy"))
    model = tmp_path / "linear.pt"
    record = read_ceiling(tmp_path / "c")
    written = json.loads((tmp_path / "c" / "ceiling.json").read_text())
    assert written["model"] == {
        "name": "linear.pt",
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    assert list(record["classes"]) == [str(c) for c in range(10)]
    for row in written["classes"].values():
        assert row["reaches_0.99"] == (row["shortfall"] <= 0.01) and row["gap"] >= 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["ceiling.json", "ceiling.png"]

    code, _, err = run(capsys, "report", str(tmp_path))  # a ceiling and its model, nothing else
    assert code == 0, err
    page = read_page(tmp_path)
    rows = page.table("ceiling")
    assert [r[0] for r in rows] == [str(c) for c in range(10)]
    assert rows[3][1] == f"{written['classes']['3']['shortfall']:.2e}"
    # One card: the checkpoint found in the folder, merged with the ceiling's record of it.
    cards = page.table("models")
    assert len(cards) == 1 and cards[0][0] == "linear.pt"
    assert cards[0][7:] == ["linear.pt", "c"]
    assert any("exact optimum" in i.get("alt", "") for i in page.images)


def test_a_damaged_ceiling_record_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ceiling.json").write_text(
        json.dumps(
            {
                "format": "identikit-ceiling",
                "version": 1,
                "model": {"name": "m.pt", "sha256": "ab"},
                "classes": {"0": {"shortfall": 2, "gap": 0}, "1": {"shortfall": 0, "gap": 0}},
            }
        )
    )
    code, _, err = run(capsys, "report", str(tmp_path))
    assert code == 2 and "ceiling.json" in err and "classes.0.shortfall" in err


class WritesAFile(nn.Module):
    """TorchScript whose code writes a file when run: what a hostile model file can do."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.marker, shared=True, size=1, dtype=torch.uint8)
        return x.flatten(1)[:, :10] + written.float().sum() * 0


def test_every_checkpoint_in_the_folder_gets_a_card(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "models").mkdir()
    small_model(folder / "models" / "unused.pt", seed=7)
    marker = tmp_path / "written-by-the-model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(WritesAFile(str(marker))), str(folder / "evil.pt"))
    (folder / "junk.pth").write_bytes(b"\x00" * 100)
    (folder / "outside.pt").symlink_to(tmp_path / "missing-target.pt")
    code, _, err = run(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    assert not marker.exists()  # the TorchScript file was never run
    page = read_page(folder)
    cards = {row[0]: row for row in page.table("models")}
    assert set(cards) == {"softmax.pt", "unused.pt"}
    # The sweep's card and the file's, matched by content hash: one row, both facts.
    assert cards["softmax.pt"][7:] == ["softmax.pt", "sweep"]
    assert cards["softmax.pt"][2] == "7,850" and cards["softmax.pt"][3] == "10.00%"
    assert cards["unused.pt"][7:] == ["models/unused.pt", "none"]
    assert "evil.pt is TorchScript" in page.text and "junk.pth" in page.text


# --- 8. labels that say what they mean -----------------------------------------------------


def test_confidence_labels_tell_near_certain_runs_apart() -> None:
    assert confidence_label(0.5) == "0.500"
    assert confidence_label(0.99991) == "1-9.0e-5"
    assert confidence_label(0.99997) == "1-3.0e-5"
    assert confidence_label(1 - 2.5e-9) == "1-2.5e-9"
    assert confidence_label(1.0) == "1"


def test_comparison_sweep_labels(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep as compare runs them (target 0.9999, patience past the budget), by a white-box
    strategy, beside a certainty record and a comparison."""
    args = sweep_args(model_file, tmp_path / "g", "--strategy", "gradient", "--target", "0.9999")
    assert main([*args, "--patience", "1000000000"]) == 0
    (tmp_path / "g" / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    row = {"success": {"0.99": 1, "0.999": 1, "0.9999": 0}, "median_queries": {}, "seconds": 1}
    (tmp_path / "compare.json").write_text(json.dumps({"gradient": row, "square": row}))
    code, _, err = run(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    page = read_page(tmp_path)
    assert "patience none," in " ".join(page.text.split())
    assert "forward and one backward pass" in page.text
    assert [r[0] for r in page.table("comparison")] == ["gradient*", "square"]
    # The certainty record is titled by the model of the sweep beside it.
    assert "softmax.pt (g)" in page.headings
    assert is_white_box("gradient") and not is_white_box("square")


# --- 5. replays say what they do, and pages say where they are ------------------------------


def test_replay_says_which_sweep_and_gif_counts_confidence(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "report", str(folder), "--model", str(folder / "softmax.pt"))
    assert code == 0, err
    assert f"replaying run 0 of each digit of {folder / 'sweep'} ..." in err
    page = read_page(folder)
    gif = next(i["src"] for i in page.images if i["src"].startswith("data:image/gif"))
    frames = Image.open(io.BytesIO(__import__("base64").b64decode(gif.split(",", 1)[1])))
    assert frames.size[1] == 28 * 4 + 18 + 14  # room for the counter under the images


def test_gif_frames_show_the_confidence_of_their_iteration() -> None:
    trajectories = [np.zeros((3, 28, 28)), np.ones((2, 28, 28))]
    gif = Image.open(
        io.BytesIO(
            animation_gif(trajectories, ["0", "1"], confidences=[[0.1, 0.5, 0.99], [0.2, 0.3]])
        )
    )
    strips = []
    for frame in range(gif.n_frames):  # type: ignore[attr-defined]
        gif.seek(frame)
        strips.append(np.asarray(gif.convert("L"))[28 * 4 + 17 :, : 28 * 4])
    assert all((strip < 128).any() for strip in strips)  # a number under the image
    assert not np.array_equal(strips[0], strips[-1])  # that changes as the run goes


def test_open_without_a_browser_says_where_the_page_is(
    swept: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: False)
    code, _, err = run(capsys, "report", str(swept), "--no-animation", "--open")
    assert code == 0
    assert f"could not open a browser; the page is {(swept / 'report.html').resolve()}" in err


# --- features: single PNGs and the nearest real digits -------------------------------------


def test_pngs_of_every_identikit(
    swept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pngs"
    code, stdout, err = run(capsys, "report", str(swept), "--no-animation", "--pngs", str(out))
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


@pytest.fixture
def tiny_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registered dataset 'tiny' whose files lie where identikit keeps its data."""
    home = tmp_path / "data-home"
    folder = home / "tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    from identikit.data.idx import encode_idx

    for split in ("train", "test"):
        for name, array in zip(data._MNIST_FILES[split], (images, labels), strict=True):
            (folder / name).write_bytes(encode_idx(array))
    spec = data.DatasetSpec(name="tiny", files=data._MNIST_FILES, class_names=tuple("0123456789"))
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    monkeypatch.setenv("IDENTIKIT_DATA", str(home))
    yield home


def test_nearest_real_digits_beside_the_identikits(
    folder: Path, tiny_registered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = {"judges": {}, "dataset": "tiny", "nearest_index": [3, 10, 21, 5], "identikits": 4}
    (folder / "sweep" / "judge.json").write_text(json.dumps(verdict))
    code, _, err = run(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    pairs = [i for i in read_page(folder).images if "nearest real" in i.get("alt", "")]
    assert len(pairs) == 1
    # A dataset that is not registered (here a folder anywhere) is never read: no pairs.
    verdict["dataset"] = f"idx:{tiny_registered / 'tiny'}"
    (folder / "sweep" / "judge.json").write_text(json.dumps(verdict))
    code, _, err = run(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    assert not [i for i in read_page(folder).images if "nearest real" in i.get("alt", "")]


# --- the whole page in a real browser -------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_a_page_of_ceilings_and_cards_in_chromium(
    ceilinged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import sync_playwright

    tmp_path = Path(shutil.copytree(ceilinged, tmp_path / "copy"))
    (tmp_path / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    code, _, err = run(capsys, "report", str(tmp_path))
    assert code == 0, err
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate("document.body.getAttribute('data-broken-images')")
        images = page.evaluate("document.images.length")
        rows = page.evaluate("document.querySelectorAll('table.ceiling tr').length")
        cards = page.evaluate("document.querySelectorAll('#models tr.model').length")
        browser.close()
    assert errors == [] and broken == "0" and images == 1  # the ceiling's picture, loaded
    assert rows == 11 and cards == 1
