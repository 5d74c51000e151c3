"""One writer and one reader for each record beside a sweep (compare.json, judge.json,
certainty.json, ceiling.json), each with a checked format version: what is written reads back the
same, a file written before versions were recorded reads as version 1, a newer one is refused in
one line, and damaged ones are one line too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from identikit.base.errors import IdentikitError
from identikit.sweeps.result_files import (
    CEILING_FILE,
    CERTAINTY_FILE,
    COMPARE_FILE,
    JUDGE_FILE,
    check_judge,
    compared_strategies,
    read_ceiling,
    read_certainty,
    read_comparison,
    read_verdict,
    write_ceiling_record,
    write_certainty_record,
    write_comparison,
    write_verdict,
)
from tests.helpers import assert_clean_error, one_line_refusal, rewrite_json, run_main

THRESHOLDS = ("0.99", "0.999", "0.9999")


COMPARE_ROW = {
    "success": {"0.99": 1.0, "0.999": 0.5, "0.9999": 0.0},
    "median_queries": {"0.99": 40.0, "0.999": 90.0, "0.9999": None},
    "seconds": 1.5,
}


VERDICT = {
    "sweep": "s",
    "strategy": "square",
    "identikits": 2,
    "dataset": "mnist",
    "judges": {"mlp": 0.5},
    "nearest_neighbour": 1.0,
    "transfer_matrices": {"mlp": [[1, 0], [1, 0]]},
    "nearest_index": [5, 7],
}


CERTAINTY = {
    "blank": {
        "n": 1,
        "mean": 0.1,
        "median": 0.1,
        "above_0.6": 0.0,
        "above_0.9": 0.0,
        "above_0.99": 0.0,
    },
}


CEILING_ROWS = {
    str(c): {"shortfall": s, "gap": 0.0, "reaches_0.99": s <= 1e-2, "reaches_0.9999": s <= 1e-4}
    for c, s in enumerate([1e-5, 0.5])
}


def test_compare_json_round_trip(tmp_path: Path) -> None:
    path = write_comparison(tmp_path, {"square": COMPARE_ROW, "gradient": COMPARE_ROW})
    assert path == tmp_path / COMPARE_FILE
    assert json.loads(path.read_text())["version"] == 1
    rows = read_comparison(tmp_path, THRESHOLDS)
    assert rows == {"square": COMPARE_ROW, "gradient": COMPARE_ROW}
    assert compared_strategies(tmp_path) == ["square", "gradient"]


def test_judge_json_round_trip(tmp_path: Path) -> None:
    path = write_verdict(tmp_path, VERDICT)
    assert path == tmp_path / JUDGE_FILE
    assert json.loads(path.read_text()) == {"version": 1, **VERDICT}
    checked = read_verdict(tmp_path, 2, identikits=2)
    assert checked == {
        "judges": {"mlp": 0.5},
        "nearest_neighbour": 1.0,
        "transfer_matrices": {"mlp": [[1, 0], [1, 0]]},
        "dataset": "mnist",
        "nearest_index": [5, 7],
        # written before judges' own accuracies, names and the identikits' hash were kept
        "judge_info": {},
        "class_names": None,
        "identikits_sha256": None,
    }


def test_certainty_json_round_trip(tmp_path: Path) -> None:
    path = write_certainty_record(tmp_path, CERTAINTY)
    assert path == tmp_path / CERTAINTY_FILE
    assert json.loads(path.read_text()) == {"version": 1, **CERTAINTY}
    assert read_certainty(tmp_path) == CERTAINTY


def test_ceiling_json_round_trip(tmp_path: Path) -> None:
    path = write_ceiling_record(tmp_path, name="m.pt", sha256="ab", rows=CEILING_ROWS)
    assert path == tmp_path / CEILING_FILE
    written = json.loads(path.read_text())
    assert written["format"] == "identikit-ceiling" and written["version"] == 1
    assert read_ceiling(tmp_path) == {
        "model": {"name": "m.pt", "sha256": "ab"},
        "classes": CEILING_ROWS,
    }


# Each record as files written before versions were recorded hold it, and how it is read.
UNVERSIONED: dict[str, tuple[str, dict[str, Any], Callable[[Path], object]]] = {
    "compare": (COMPARE_FILE, {"square": COMPARE_ROW}, lambda f: read_comparison(f, THRESHOLDS)),
    "judge": (JUDGE_FILE, VERDICT, lambda f: read_verdict(f, 2)),
    "certainty": (CERTAINTY_FILE, CERTAINTY, read_certainty),
}


@pytest.mark.parametrize("kind", sorted(UNVERSIONED))
def test_a_record_without_a_version_reads_as_version_1(kind: str, tmp_path: Path) -> None:
    name, record, read = UNVERSIONED[kind]
    (tmp_path / name).write_text(json.dumps(record))
    read(tmp_path)
    (tmp_path / name).write_text(json.dumps({"version": 1, **record}))
    read(tmp_path)


@pytest.mark.parametrize("kind", [*sorted(UNVERSIONED), "ceiling"])
def test_a_record_of_a_newer_version_is_refused(kind: str, tmp_path: Path) -> None:
    if kind == "ceiling":
        write_ceiling_record(tmp_path, name="m.pt", sha256="ab", rows=CEILING_ROWS)
        name: str = CEILING_FILE
        read: Callable[[Path], object] = read_ceiling
        rewrite_json(tmp_path / name, lambda r: {**r, "version": 2})
    else:
        name, record, read = UNVERSIONED[kind]
        (tmp_path / name).write_text(json.dumps({"version": 2, **record}))
    one_line_refusal(lambda: read(tmp_path), name, "newer identikit", "version 2")


@pytest.mark.parametrize("version", [0, -5])
@pytest.mark.parametrize("kind", [*sorted(UNVERSIONED), "ceiling"])
def test_a_version_below_1_is_refused(kind: str, version: int, tmp_path: Path) -> None:
    if kind == "ceiling":
        write_ceiling_record(tmp_path, name="m.pt", sha256="ab", rows=CEILING_ROWS)
        name: str = CEILING_FILE
        read: Callable[[Path], object] = read_ceiling
        rewrite_json(tmp_path / name, lambda r: {**r, "version": version})
    else:
        name, record, read = UNVERSIONED[kind]
        (tmp_path / name).write_text(json.dumps({"version": version, **record}))
    one_line_refusal(
        lambda: read(tmp_path), name, f"version = {version} is out of range: identikit writes 1 to"
    )


def test_a_version_that_is_no_whole_number_is_damage(tmp_path: Path) -> None:
    (tmp_path / CERTAINTY_FILE).write_text(json.dumps({"version": "2", **CERTAINTY}))
    one_line_refusal(lambda: read_certainty(tmp_path), CERTAINTY_FILE, "version is not a whole")
    (tmp_path / COMPARE_FILE).write_text(json.dumps({"version": 3}))
    one_line_refusal(lambda: compared_strategies(tmp_path), COMPARE_FILE, "newer identikit")


NEAREST_VERDICT = {
    "identikits": 2,
    "judges": {"mlp": 0.5},
    "nearest_neighbour": 1.0,
    "transfer_matrices": {},
    "dataset": "mnist",
    "nearest_index": [5, 59_999],
}


def test_check_judge_returns_the_nearest_digits() -> None:
    checked = check_judge(NEAREST_VERDICT, "judge.json", 10, identikits=2, train_size=60_000)
    assert checked["dataset"] == "mnist" and checked["nearest_index"] == [5, 59_999]
    older = {k: v for k, v in NEAREST_VERDICT.items() if k not in ("dataset", "nearest_index")}
    checked = check_judge(older, "judge.json", 10)
    assert checked["dataset"] is None and checked["nearest_index"] is None
    assert checked["judges"] == {"mlp": 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nearest_index": [5, -1]}, r"nearest_index\[1\] = -1 is out of range"),
        ({"nearest_index": [5, 60_000]}, r"nearest_index\[1\] = 60000 is out of range"),
        ({"nearest_index": [5]}, "has 1 entries, expected 2"),
        ({"nearest_index": [5, 1.5]}, "not a whole number"),
        ({"nearest_index": [5, True]}, "not a whole number"),
        ({"nearest_index": "5,6"}, "not a list"),
        ({"dataset": 3}, "dataset is not a string"),
    ],
)
def test_check_judge_refuses_damaged_nearest_digits(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(IdentikitError, match=message):
        check_judge(
            {**NEAREST_VERDICT, **change}, "judge.json", 10, identikits=2, train_size=60_000
        )


def test_check_judge_counts_against_the_sweep() -> None:
    # The file's own count cannot vouch for itself when the sweep's is known.
    lying = {**NEAREST_VERDICT, "identikits": 3, "nearest_index": [1, 2, 3]}
    check_judge(lying, "judge.json", 10)
    with pytest.raises(IdentikitError, match="expected 2"):
        check_judge(lying, "judge.json", 10, identikits=2)


SIDE_FILES: dict[str, tuple[str, Any]] = {
    "judge a list": ("sweep/judge.json", []),
    "judge share a string": ("sweep/judge.json", {"judges": {"mlp": "most"}}),
    "judge share above 1": ("sweep/judge.json", {"judges": {"mlp": 3}}),
    "judge matrix not square": ("sweep/judge.json", {"transfer_matrices": {"mlp": [[1, 2]]}}),
    "certainty row a number": ("certainty.json", {"blank": 1}),
    "certainty lacks mean": ("certainty.json", {"blank": {"n": 1}}),
    "compare row empty": ("cmp/compare.json", {"square": {}}),
    "compare success a string": (
        "cmp/compare.json",
        {"square": {"success": {"0.99": "all"}, "median_queries": {}, "seconds": 1}},
    ),
}


@pytest.mark.parametrize("case", sorted(SIDE_FILES))
def test_damaged_verdicts_and_records(
    copy: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, content = SIDE_FILES[case]
    (copy / name).write_text(json.dumps(content))
    code, _, err = run_main(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, Path(name).name)


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
    code, _, err = run_main(capsys, "report", str(tmp_path))
    assert code == 2 and "ceiling.json" in err and "classes.0.shortfall" in err
