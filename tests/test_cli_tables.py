"""The tables the commands print: aligned with long class names, a row per certainty source."""

from __future__ import annotations

from pathlib import Path

from identikit.cli.tables import format_certainty, format_summary, format_verdict


def test_summary_table_with_long_class_names_is_aligned() -> None:
    row = {"runs": 2, "converged": 1, "rate": 0.5, "rate_ci95": [0.1, 0.9], "median_queries": 10}
    results = {
        "settings": {"target": 0.99},
        "model": {"class_names": ["T-shirt/top", "Trouser", "Ankle boot"]},
        "summary": {"0": row, "1": row, "2": row},
        "total_queries": 60,
        "seconds": 1.0,
        "queries_per_second": 60.0,
    }
    lines = format_summary(results).splitlines()
    assert lines[0].split()[0] == "class"
    table = lines[:4]
    assert "0 T-shirt/top" in table[1]
    # Every row's columns end where the header's do.
    header_end = table[0].index("median queries") + len("median queries")
    assert {len(line) for line in table[1:]} == {header_end}


def test_the_table_has_a_row_per_source() -> None:
    row = {
        "n": 3,
        "mean": 0.5,
        "median": 0.25,
        "above_0.6": 0.5,
        "above_0.9": 0.1,
        "above_0.99": 0.0,
    }
    lines = format_certainty("m.pt", {"blank": row, "uniform-noise": row}).splitlines()
    assert lines[0] == "m.pt: largest softmax output"
    assert lines[1].split() == ["source", "n", "mean", "median", ">0.6", ">0.9", ">0.99"]
    assert lines[2].split() == ["blank", "3", "0.500", "0.250", "50.0%", "10.0%", "0.0%"]
    assert lines[3].startswith("uniform-noise ")


def test_a_verdict_names_each_judge_s_own_accuracy(tmp_path: Path) -> None:
    """A judge's agreement beside its own accuracy on real test images, where recorded."""
    info = {"accuracy": 0.5, "test_images": 1797, "dataset": "npz:/a/b.npz", "kind": "file"}
    verdict = {
        "identikits": 4,
        "strategy": "square",
        "judges": {"j.onnx": 0.25, "old": 0.5},
        "judge_info": {"j.onnx": {**info, "file": "/a/j.onnx"}},
        "nearest_neighbour": 0.5,
        "median_distance_own_class": 1.0,
        "median_distance_other_classes": 2.0,
    }
    lines = format_verdict(verdict, tmp_path).splitlines()
    assert lines[1].endswith(
        "of them their class (its own accuracy: 50.0% on 1,797 test images of npz:b.npz "
        "(file, j.onnx))"
    )
    assert lines[2].endswith("calls  50.0% of them their class")
