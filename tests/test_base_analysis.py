"""Summary statistics of runs: Wilson intervals, per-class counts and the queries a run took to
reach a threshold."""

from __future__ import annotations

import pytest

from identikit.base.analysis import queries_to_reach, summarise_runs, wilson_interval


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 5)
    assert low == 0 and high == pytest.approx(0.4345, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_counts() -> None:
    runs = [
        {"digit": 1, "status": s, "queries": q, "confidence": c}
        for s, q, c in (("converged", 100, 0.995), ("converged", 300, 0.991), ("stuck", 900, 0.5))
    ]
    row = summarise_runs(runs, [1, 2])
    assert row["1"]["converged"] == 2 and row["1"]["stuck"] == 1
    assert row["1"]["median_queries"] == 200 and row["1"]["median_queries_all"] == 300
    assert row["2"]["runs"] == 0 and row["2"]["median_queries"] is None


def test_queries_to_reach() -> None:
    assert queries_to_reach([0.1, 0.5, 0.995], 0.99, queries_per_step=10) == 21
    assert queries_to_reach([0.995], 0.99, queries_per_step=10) == 1
    assert queries_to_reach([0.1, 0.5], 0.99, queries_per_step=10) is None
