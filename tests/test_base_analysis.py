"""Summary statistics of runs: Wilson intervals, per-class counts and the queries a run took to
reach a threshold."""

from __future__ import annotations

import numpy as np
import pytest

from identikit.base.analysis import (
    class_diversity,
    queries_to_reach,
    summarise_runs,
    wilson_interval,
)


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


def test_class_diversity_is_the_mean_pairwise_rms_difference() -> None:
    same = np.full((3, 4, 4), 0.5)
    spread = class_diversity(np.concatenate([same, np.zeros((1, 4, 4))]), np.array([0, 0, 0, 1]))
    assert spread == {0: 0.0, 1: None}  # one image drawn three times; a class of one
    two = np.stack([np.zeros((2, 2)), np.ones((2, 2))])
    assert class_diversity(two, np.array([7, 7])) == {7: 1.0}
    # uniform noise: E|a - b|^2 = 1/6 per value, so about sqrt(1/6) = 0.41
    noise = np.random.default_rng(0).random((40, 3, 8, 8))
    noisy = class_diversity(noise, np.zeros(40, dtype=int))[0]
    assert noisy is not None and abs(noisy - 6**-0.5) < 0.01
