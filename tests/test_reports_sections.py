"""The report of a folder of several models (issue 29, part 5): the summary grouped by model, a
column for every judge with its own accuracy, class names in every table and thumbnail, "digit"
only for digits, runs coloured by the measure the user asked for, and nearest-image pairs of
colour sweeps (or one line saying why there are none)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import identikit
from identikit.base import figures
from identikit.base.analysis import class_diversity
from identikit.base.shapes import ImageShape
from identikit.cli import main
from identikit.models import build_model
from identikit.reports.classes import ClassNaming
from identikit.sweeps.reconstruction import convergence_measure
from tests.helpers import (
    read_page,
    report_search_args,
    rewrite_json,
    run_main,
    small_model,
    softmax_model,
    write_idx_folder,
)

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SMALL = identikit.SweepConfig(
    digits=(0, 1), runs=2, strategy_settings={"candidates": 20}, max_queries=400
)


def _classifier(seed: int, name: str, names: tuple[str, ...] = ()) -> identikit.Classifier:
    """A tiny softmax model known by ``name`` (its hash from the name: two models differ)."""
    info = identikit.ModelInfo(
        name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), class_names=names
    )
    return identikit.Classifier(softmax_model(seed=seed), info)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two models' sweeps: ``named`` (classes named zero..nine) judged by the
    file judge ``judge-b.pt`` and the built-in-like ``judge-a.pt`` with its accuracy recorded;
    ``plain`` (numbered classes: digits) judged by ``judge-a.pt`` only, in an older verdict
    without judge_info."""
    root = tmp_path_factory.mktemp("two-models")
    identikit.search(_classifier(0, "named.pt", NAMES), SMALL, out=root / "named")
    identikit.search(_classifier(1, "plain.pt"), SMALL, out=root / "plain")
    judge_a = small_model(root / "judges" / "judge-a.pt", seed=2)
    judge_b = small_model(root / "judges" / "judge-b.pt", seed=3)
    for folder, judges in (("named", [judge_a, judge_b]), ("plain", [judge_a])):
        verdicts = {}
        for judge in judges:  # one judge at a time: verdicts kept side by side here
            (verdict,) = identikit.judge(root / folder, [str(judge)], _grey_setup(root))
            verdicts.update(verdict.verdict["judges"])
            matrices = verdict.verdict["transfer_matrices"]
        record: dict[str, Any] = {
            "judges": verdicts,
            "nearest_neighbour": 0.5,
            "transfer_matrices": {name: matrices[next(iter(matrices))] for name in verdicts},
        }
        if folder == "named":
            record["judge_info"] = {
                name: {"accuracy": accuracy, "test_images": 100, "dataset": "idx:/d/data"}
                | {"kind": "file", "file": f"/elsewhere/{name}"}
                for name, accuracy in (("judge-a.pt", 0.875), ("judge-b.pt", 0.5))
            }
        (root / folder / "judge.json").write_text(json.dumps(record))
    assert main(["report", str(root), "--no-animation"]) == 0
    return root


def _grey_setup(root: Path) -> identikit.JudgeSetup:
    data = root / "data"
    if not data.exists():
        write_idx_folder(data, train=60, test=20)
    return identikit.JudgeSetup(dataset=f"idx:{data}")


def _section(page_text: str, start: str, end: str | None = None) -> str:
    text = " ".join(page_text.split())
    tail = text[text.index(start) :]
    return tail[: tail.index(end)] if end and end in tail else tail


def test_the_summary_is_grouped_by_model_with_a_column_per_judge(two_models: Path) -> None:
    """Before: one sentence over both models ("agree most with square (..) and least with
    square"), and only the first row's judges as columns (judge-b.pt's was missing)."""
    page = read_page(two_models)
    named_sha = hashlib.sha256(b"named.pt").hexdigest()[:12]
    assert f"named.pt (SHA-256 {named_sha})" in page.headings
    assert any(h.startswith("plain.pt (SHA-256") for h in page.headings)
    text = " ".join(page.text.split())
    # One sentence per model, naming it alone.
    assert "Judges that never saw named.pt's searches call" in text
    assert "Judges that never saw plain.pt's searches call" in text
    rows = [r for r in page.table("summary") if len(r) > 1]
    named, plain = (next(r for r in rows if f"{m} ·" in r[0]) for m in ("named", "plain"))
    # Columns: identikits, data, strip, judge-a.pt, judge-b.pt, nearest.
    assert len(named) == len(plain) == 6
    assert named[3].endswith("%") and named[4].endswith("%")
    assert plain[3].endswith("%") and plain[4] == "-"  # judge-b.pt never judged plain
    # Each judge's own accuracy under its column; an older verdict's judge shows a dash.
    html = (two_models / "report.html").read_text()
    assert "87.5% accurate" in html and "50.0% accurate" in html
    own = [(r[0], r[2]) for r in page.table("judges") if r[0].startswith("judge-")]
    assert own == [
        ("judge-a.pt", "87.5% on 100 test images of idx:data (file, judge-a.pt)"),
        ("judge-b.pt", "50.0% on 100 test images of idx:data (file, judge-b.pt)"),
        ("judge-a.pt", "-"),  # plain's older verdict records no accuracy
    ]


def test_class_names_in_tables_and_thumbnails_and_digit_only_for_digits(
    two_models: Path,
) -> None:
    page = read_page(two_models)
    rows = [r[0] for r in page.table("convergence")]
    assert rows == ["0 zero", "1 one", "0", "1"]  # named sweep first, then the digits'
    # each class's diversity: the mean RMS difference between its identikits (issue 30)
    with np.load(two_models / "named" / "identikits.npz") as npz:
        spread = class_diversity(npz["images"], npz["digits"])
    shown = [r[-1] for r in page.table("convergence")[:2]]
    assert shown == [f"{spread[c]:.3f}" if spread[c] is not None else "-" for c in (0, 1)]
    strips = [i for i in page.images if "one per class" in i.get("alt", "")]
    assert any(i["alt"].endswith(": zero, one") for i in strips)
    assert any(i["alt"].endswith(": 0, 1") for i in strips)
    text = " ".join(page.text.split())
    named = _section(page.text, "named.pt · ", "plain.pt · ")
    plain = _section(page.text, "plain.pt · ")
    assert "digit" not in named.lower() and "Classes as rows" in named
    assert "runs per digit" in plain and "Digits as rows" in plain
    # The page's opening sentence: classes, as not every sweep's classes are digits.
    assert "believe each class looks like" in text


def test_matrices_and_thumbnails_name_the_classes() -> None:
    matrix = np.eye(3, dtype=int).tolist()
    numbered = figures.transfer_matrix(matrix, judge="j")
    named = figures.transfer_matrix(matrix, judge="j", names=["cat", "dog", "eel"])
    assert numbered != named
    assert figures.transfer_matrix(matrix, judge="j", names=["0", "1", "2"]) == numbered
    images = [np.zeros((3, 8, 8), np.float32)] * 2
    plain = Image.open(io.BytesIO(figures.identikit_strip(images)))
    captioned = Image.open(io.BytesIO(figures.identikit_strip(images, labels=["cat", "dôg✓"])))
    assert captioned.height > plain.height and captioned.width == plain.width


def _grid_red_pixels(page_html: str) -> int:
    """The red pixels of the page's first identikit grid (red labels: below the measure)."""
    start = page_html.index('alt="identikit grid')
    uri = page_html[page_html.rindex('src="', 0, start) + 5 : start - 2]
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    pixels = np.asarray(picture).astype(int)
    return int(((pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)).sum())


def _at(confidence: float, status: str) -> Any:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        for run in record["runs"]:
            run["confidence"], run["status"] = confidence, status
        return record

    return change


@pytest.mark.parametrize(
    ("target", "reached"), [("0.99", "4 of 4 runs reached 0.99"), ("0.999", "0 of 4")]
)
def test_runs_are_coloured_by_the_target(
    model_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    reached: str,
) -> None:
    """A run at 0.995: converged at --target 0.99, not at 0.999."""
    assert main(report_search_args(model_file, tmp_path / "s", "--target", target)) == 0
    rewrite_json(tmp_path / "s" / "results.json", _at(0.995, "budget"))
    code, _, err = run_main(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    html = (tmp_path / "report.html").read_text()
    assert reached in " ".join(read_page(tmp_path).text.split())
    assert (_grid_red_pixels(html) > 0) == (target == "0.999")


def test_a_reconstruction_at_0_998_shows_as_converged(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a reconstruction stops at 0.9999, so its runs at 0.998 were red "not
    converged", though the README measures reconstructions at 0.99."""
    out = tmp_path / "r"
    args = ["reconstruct", "--model", str(model_file), "--out", str(out)]
    assert main([*args, "--classes", "0,1", "--runs", "1", "--steps", "6", "--no-progress"]) == 0
    rewrite_json(out / "results.json", _at(0.998, "budget"))
    code, _, err = run_main(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    page = read_page(tmp_path)
    text = " ".join(page.text.split())
    assert "2 of 2 runs reached 0.99 (the measure of a reconstruction" in text
    assert [r[3] for r in page.table("convergence")] == ["1", "1"]  # the "at 0.99" column
    assert _grid_red_pixels((tmp_path / "report.html").read_text()) == 0
    assert convergence_measure({"strategy": "reconstruct", "target": 0.9999}) == 0.99
    assert convergence_measure({"strategy": "reconstruct", "target": 0.999}) == 0.999


COLOUR = ImageShape(3, 32, 32)


def test_colour_sweeps_get_nearest_pairs_or_a_line_saying_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a colour sweep's verdict never had nearest-image pairs, and the page said
    nothing of why."""
    torch.manual_seed(0)
    model = identikit.Classifier(
        build_model("softmax", 10, COLOUR),
        identikit.ModelInfo(name="colour", sha256="c" * 64, input_shape=COLOUR),
    )
    identikit.search(model, SMALL, out=tmp_path / "colour")
    # Training images 0, 1, 2, 3 of the shapes dataset (made here from its seed).
    verdict = {"judges": {}, "dataset": "shapes", "nearest_index": [0, 1, 2, 3], "identikits": 4}
    (tmp_path / "colour" / "judge.json").write_text(json.dumps(verdict))
    code, _, err = run_main(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    page = read_page(tmp_path)
    (pairs,) = [i for i in page.images if "nearest real" in i.get("alt", "")]
    picture = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(pairs["src"].split(",", 1)[1]))).convert("RGB")
    ).astype(int)
    assert (abs(picture[..., 0] - picture[..., 2]) > 40).any()  # in colour
    assert "No nearest-image pairs" not in page.text
    # A dataset in a file the verdict names is never read: one line says so.
    verdict["dataset"] = f"npz:{tmp_path / 'secret.npz'}"
    (tmp_path / "colour" / "judge.json").write_text(json.dumps(verdict))
    code, _, err = run_main(capsys, "report", str(tmp_path), "--no-animation")
    assert code == 0, err
    page = read_page(tmp_path)
    assert not [i for i in page.images if "nearest real" in i.get("alt", "")]
    (line,) = [line for line in page.text.splitlines() if "No nearest-image pairs" in line]
    assert "npz:secret.npz is a file or folder" in line and str(tmp_path) not in line
    # A verdict recorded before the nearest images were: said too.
    del verdict["dataset"], verdict["nearest_index"]
    (tmp_path / "colour" / "judge.json").write_text(json.dumps(verdict))
    assert run_main(capsys, "report", str(tmp_path), "--no-animation")[0] == 0
    assert "judged before identikit recorded" in read_page(tmp_path).text
    shutil.rmtree(tmp_path / "colour")


def test_the_naming_decides_digit_or_class() -> None:
    assert ClassNaming.of(10).noun == "digit"
    assert ClassNaming.of(10, [str(i) for i in range(10)]).noun == "digit"
    assert ClassNaming.of(10, channels=3).noun == "class"  # colour: CIFAR-10 without names
    assert ClassNaming.of(10, NAMES).noun == "class"
    assert ClassNaming.of(100).noun == "class"
    assert ClassNaming.of(3, ["cat", "dog", "eel"]).numbered(1) == "1 dog"
    assert ClassNaming.of(3).numbered(1) == "1"
