"""The report page: figure functions, and the whole page in a real headless Chromium."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from identikit.base.figures import animation_gif, convergence_curves, transfer_matrix
from tests.helpers import CHROMIUM, assert_one_line_error, run_cli, write_idx_folder

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


def test_animation_gif_frames() -> None:
    trajectories = [
        np.linspace(0, 1, 5)[:, None, None] * np.ones((5, 28, 28)),
        np.zeros((3, 28, 28)),
    ]
    gif = Image.open(io.BytesIO(animation_gif(trajectories, ["0", "1"], frames=10, scale=2)))
    # One frame per moment of the longest run (n_frames is missing from PIL's stubs).
    assert gif.format == "GIF" and gif.n_frames == 5  # type: ignore[attr-defined]
    assert gif.size == (2 * (56 + 4) + 4, 56 + 18)


def test_transfer_matrix_and_curves_are_pngs() -> None:
    matrix = [[3, 1], [0, 4]]
    assert Image.open(io.BytesIO(transfer_matrix(matrix, judge="mlp"))).format == "PNG"
    png = convergence_curves(
        {"a": ([10, 20], [0.5, 1.0]), "b": ([], [])}, threshold=0.99, max_queries=100
    )
    assert Image.open(io.BytesIO(png)).size[0] > 300


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", str(tmp_path)), "no finished sweep")


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real folder of results: a tiny model's sweep, certainty and judge verdict."""
    root = tmp_path_factory.mktemp("results")
    data = write_idx_folder(root / "data", train=300, test=100)
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


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_in_headless_chromium(results_folder: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = results_folder / "report.html"
    html = page_file.read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    results = json.loads((results_folder / "sweep" / "results.json").read_text())
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
    assert judges[0] == ["softmax", f"{100 * verdict['judges']['softmax']:.1f}%"]
    assert (tmp_path / "report.png").stat().st_size > 10_000
