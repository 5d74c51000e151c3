"""The report page, checked in the HTML it writes and in headless Chromium: folders of any kind of
result, ceilings, comparison labels, the nearest real digits, and names that are not UTF-8."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from identikit.base.errors import IdentikitError
from identikit.cli import main
from identikit.data import datasets as data
from identikit.data.idx import encode_idx
from identikit.reports.page import write_pngs
from identikit.strategies.registry import is_white_box
from identikit.sweeps.result_files import read_ceiling
from tests.helpers import (
    CHROMIUM,
    assert_one_line_error,
    needs_browser,
    read_page,
    report_search_args,
    run_cli,
    run_main,
    search_args,
    write_idx_folder,
)


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", str(tmp_path)), "no finished sweep")


def test_an_empty_folder_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "softmax.pt").write_bytes(b"not results")
    code, _, err = run_main(capsys, "report", str(tmp_path))
    assert code == 2 and "holds no results" in err and len(err.strip().splitlines()) == 1


CERTAINTY_ROW = {
    "n": 1,
    "mean": 0.1,
    "median": 0.1,
    "above_0.6": 0,
    "above_0.9": 0,
    "above_0.99": 0,
}


def test_a_folder_of_certainty_only_makes_a_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    code, _, err = run_main(capsys, "report", str(tmp_path))
    assert code == 0, err
    page = read_page(tmp_path)
    assert page.table("certainty") == [["blank", "1", "0.100", "0.100", "0.0%", "0.0%", "0.0%"]]
    # No sweep names the model, and certainty.json does not: the page says so, not the folder.
    assert page.headings == ["model not recorded (this folder)"]


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

    code, _, err = run_main(
        capsys, "report", str(tmp_path)
    )  # a ceiling and its model, nothing else
    assert code == 0, err
    page = read_page(tmp_path)
    rows = page.table("ceiling")
    assert [r[0] for r in rows] == [str(c) for c in range(10)]
    assert rows[3][1] == f"{written['classes']['3']['shortfall']:.2e}"
    # One card: the checkpoint found in the folder, merged with the ceiling's record of it.
    cards = page.table("models")
    assert len(cards) == 1 and cards[0][0] == "linear.pt"
    assert cards[0][8:] == ["linear.pt", "c"]
    assert any("exact optimum" in i.get("alt", "") for i in page.images)


def test_comparison_sweep_labels(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep as compare runs them (target 0.9999, patience past the budget), by a white-box
    strategy, beside a certainty record and a comparison."""
    args = report_search_args(
        model_file, tmp_path / "g", "--strategy", "gradient", "--target", "0.9999"
    )
    assert main([*args, "--patience", "1000000000"]) == 0
    (tmp_path / "g" / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    row = {"success": {"0.99": 1, "0.999": 1, "0.9999": 0}, "median_queries": {}, "seconds": 1}
    (tmp_path / "compare.json").write_text(json.dumps({"gradient": row, "square": row}))
    code, _, err = run_main(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    page = read_page(tmp_path)
    assert "patience 1,000,000,000 queries (more than a run's budget: it stopped no run)," in (
        " ".join(page.text.split())
    )
    assert "forward and one backward pass" in page.text
    assert [r[0] for r in page.table("comparison")] == ["gradient*", "square"]
    # The certainty record is titled by the model of the sweep beside it.
    assert "softmax.pt (g)" in page.headings
    assert is_white_box("gradient") and not is_white_box("square")


@pytest.fixture
def tiny_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registered dataset 'tiny' whose files lie where identikit keeps its data."""
    home = tmp_path / "data-home"
    folder = home / "tiny"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
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
    code, _, err = run_main(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    pairs = [i for i in read_page(folder).images if "nearest real" in i.get("alt", "")]
    assert len(pairs) == 1
    # A dataset that is not registered (here a folder anywhere) is never read: no pairs.
    verdict["dataset"] = f"idx:{tiny_registered / 'tiny'}"
    (folder / "sweep" / "judge.json").write_text(json.dumps(verdict))
    code, _, err = run_main(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    assert not [i for i in read_page(folder).images if "nearest real" in i.get("alt", "")]


def test_a_file_name_that_is_not_utf8(model_file: Path, tmp_path: Path) -> None:
    strange = Path(os.fsdecode(bytes(tmp_path) + b"/model-\xff\xfe.pt"))
    shutil.copy(model_file, strange)
    out = tmp_path / "out"
    proc = run_cli(*search_args(strange, out))
    assert proc.returncode == 0, proc.stderr
    report = run_cli("report", str(tmp_path), "--model", str(strange))
    assert report.returncode == 0, report.stderr
    assert "model-\ufffd\ufffd.pt" in (tmp_path / "report.html").read_text()


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real folder of results: a tiny model's sweep, certainty and judge verdict."""
    root = tmp_path_factory.mktemp("results")
    # 1,000 training images: the fewest a built-in judge is trained on (issue 29).
    data = write_idx_folder(root / "data", train=1000, test=100)
    model = root / "tiny.pt"
    trained = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"idx:{data}",
        "--out",
        str(model),
        "--epochs",
        "2",
        "--no-progress",
    )
    assert trained.returncode == 0, trained.stderr
    steps = [
        [
            "search",
            "--model",
            str(model),
            "--out",
            str(root / "sweep"),
            "--runs",
            "3",
            "--strategy",
            "square",
            "--max-queries",
            "3000",
            "--target",
            "0.9",
            "--no-progress",
        ],
        [
            "certainty",
            "--model",
            str(model),
            "--dataset",
            f"idx:{data}",
            "--samples",
            "200",
            "--out",
            str(root),
        ],
        [
            "judge",
            str(root / "sweep"),
            "--judges",
            "softmax",
            "--dataset",
            f"idx:{data}",
            "--cache",
            str(root / "judges"),
        ],
        ["report", str(root), "--model", str(model)],
    ]
    for step in steps:
        proc = run_cli(*step)
        assert proc.returncode == 0, (step, proc.stderr)
    return root


@needs_browser
def test_report_in_headless_chromium(results_folder: Path, tmp_path: Path) -> None:
    page_file = results_folder / "report.html"
    html = page_file.read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    results = json.loads((results_folder / "sweep" / "results.json").read_text())
    from playwright.sync_api import sync_playwright  # optional: see needs_browser

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.resolve().as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        broken = page.evaluate("document.body.getAttribute('data-broken-images')")
        rows = page.evaluate("""Array.from(document.querySelectorAll('table.convergence tr'))
            .slice(1).map(r => Array.from(r.cells).map(c => c.textContent.trim()))""")
        judges = page.evaluate("""Array.from(document.querySelectorAll('table.judges tr'))
            .slice(1).map(r => Array.from(r.cells).map(c => c.textContent.trim()))""")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    # Grid, curve, animation, certainty histogram and the judge's matrix, all loaded.
    assert len(widths) >= 5 and all(w > 0 for w in widths) and broken == "0"
    assert [r[0] for r in rows] == list(results["summary"])
    for row, (digit, summary) in zip(rows, results["summary"].items(), strict=True):
        assert row[1:3] == [str(summary["runs"]), str(summary["converged"])], digit
        assert row[3] == f"{100 * summary['rate']:.0f}%"
    verdict = json.loads((results_folder / "sweep" / "judge.json").read_text())
    assert judges[0][:2] == ["softmax", f"{100 * verdict['judges']['softmax']:.1f}%"]
    assert (tmp_path / "report.png").stat().st_size > 10_000


@needs_browser
def test_a_page_of_ceilings_and_cards_in_chromium(
    ceilinged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = Path(shutil.copytree(ceilinged, tmp_path / "copy"))
    (tmp_path / "certainty.json").write_text(json.dumps({"blank": CERTAINTY_ROW}))
    code, _, err = run_main(capsys, "report", str(tmp_path))
    assert code == 0, err
    from playwright.sync_api import sync_playwright  # optional: see needs_browser

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


def test_pngs_are_never_written_through_a_linked_sweep_folder(swept: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    user = tmp_path / "user-pngs"
    user.mkdir()
    out = tmp_path / "pngs"
    out.symlink_to(user)  # the folder the user names may be a link of theirs
    assert len(write_pngs(swept, out)) == 4
    assert sorted(p.name for p in (user / "sweep").iterdir())[0] == "0-0.png"
    (user / "sweep").rename(user / "old")
    (user / "sweep").symlink_to(outside)  # identikit's own folder below it may not
    with pytest.raises(IdentikitError, match="is a link; refusing to write through it"):
        write_pngs(swept, out)
    assert list(outside.iterdir()) == []


def test_the_settings_line_shows_the_recorded_patience(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "patience none" where results.json recorded 25000 (the default, more than the
    sweep's 400 queries a run); a patience within the budget is shown as recorded too."""
    for patience, shown in (
        ("25000", "25,000 queries (more than a run's budget"),
        ("100", "100 queries,"),
    ):
        out = tmp_path / patience
        assert main([*report_search_args(model_file, out / "s"), "--patience", patience]) == 0
        assert json.loads((out / "s" / "results.json").read_text())["settings"]["patience"] == int(
            patience
        )
        code, _, err = run_main(capsys, "report", str(out), "--no-animation")
        assert code == 0, err
        text = " ".join(read_page(out).text.split())
        assert f"patience {shown}" in text and "patience none" not in text


def test_report_help_says_what_the_pngs_are(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "each pixel shown 8 x 8, grayscale", also for colour sweeps (RGB, 7 x 7 for
    32 x 32) and other sizes."""
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "grayscale for one-channel images, RGB for three" in text
    assert "8 for 28 x 28 images, 7 for 32 x 32" in text and "8 x 8, grayscale" not in text
