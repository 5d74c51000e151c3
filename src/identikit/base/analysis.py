"""Statistics of results: convergence rates with intervals, certainty distributions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927), 95% by default.

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0 or n
    successes, which small numbers of runs per digit make common.
    """
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise_runs(runs: Sequence[dict[str, Any]], classes: Sequence[int]) -> dict[str, Any]:
    """Per-class summary of runs: count, converged, rate with Wilson 95% interval, queries.

    ``median_queries`` is the median number of queries of the runs that converged (None when
    none did): the cost of success. ``median_queries_all`` counts every run.
    """
    summary: dict[str, Any] = {}
    for cls in classes:
        mine = [r for r in runs if r["digit"] == cls]
        converged = [r for r in mine if r["status"] == "converged"]
        low, high = wilson_interval(len(converged), len(mine))
        summary[str(cls)] = {
            "runs": len(mine),
            "converged": len(converged),
            "stuck": sum(r["status"] == "stuck" for r in mine),
            "budget": sum(r["status"] == "budget" for r in mine),
            "rate": len(converged) / len(mine) if mine else 0.0,
            "rate_ci95": [low, high],
            "median_queries": median([r["queries"] for r in converged]),
            "median_queries_all": median([r["queries"] for r in mine]),
            "median_confidence": median([r["confidence"] for r in mine]),
        }
    return summary


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return float(statistics.median(values)) if values else None


def certainty_stats(max_probabilities: Sequence[float]) -> dict[str, float]:
    """Mean, median and the fractions above 0.6, 0.9 and 0.99 of top-class probabilities."""
    values = list(max_probabilities)
    n = max(len(values), 1)
    return {
        "n": len(values),
        "mean": statistics.fmean(values) if values else 0.0,
        "median": statistics.median(values) if values else 0.0,
        "above_0.6": sum(v > 0.6 for v in values) / n,
        "above_0.9": sum(v > 0.9 for v in values) / n,
        "above_0.99": sum(v > 0.99 for v in values) / n,
    }


def queries_to_reach(
    history: Sequence[float], threshold: float, *, queries_per_step: int, start_queries: int = 1
) -> int | None:
    """Model queries a run had spent when its best confidence first reached ``threshold``.

    ``history[i]`` is the best confidence after i iterations (``history[0]``: the start image,
    which cost ``start_queries``); None when it never got there.
    """
    for iteration, confidence in enumerate(history):
        if confidence >= threshold:
            return start_queries + iteration * queries_per_step
    return None


def class_diversity(images: np.ndarray, classes: np.ndarray) -> dict[int, float | None]:
    """How different each class's images are from one another: the mean, over every pair of
    the class's images, of their root-mean-square difference per value (pixels in [0, 1]; 0 where
    every run drew the same image, about 0.41 between two images of uniform noise). None for a
    class of one image. Runs that share a batch (a reconstruction's batch-norm statistics) could
    have drawn one image many times; this says whether they did."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    labels = np.asarray(classes)
    spread: dict[int, float | None] = {}
    for label in sorted({int(c) for c in labels}):
        own = flat[labels == label]
        if len(own) < 2:
            spread[label] = None
            continue
        squared = (own**2).sum(1)
        gram = own @ own.T
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0.0))
        pairs = len(own) * (len(own) - 1)
        spread[label] = float(distances.sum() / pairs / np.sqrt(own.shape[1]))
    return spread
