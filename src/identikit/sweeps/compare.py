"""Strategies compared on equal terms: the same digits, seeds and query budget for each.

Every strategy runs the same sweep (runs stop at the highest threshold or at the budget, never
as "stuck", so no strategy is cut short by its own notion of stalling); from each run's history
of best confidences this module reads how many queries it needed to reach 0.99, 0.999 and
0.9999, and summarises success rates (Wilson 95% intervals) and median queries, which
``compare.json`` records (:mod:`identikit.sweeps.result_files`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from identikit.base.analysis import median, queries_to_reach, wilson_interval
from identikit.base.safe_folders import opened_folder
from identikit.classifier.classifier import Classifier
from identikit.strategies import RunHooks, StrategySpec
from identikit.strategies.base import NO_HOOKS
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import DEFAULT_OPTIONS, SweepOptions, SweepOutcome, sweep_to_folder

THRESHOLDS = (0.99, 0.999, 0.9999)
# Patience (in queries) that never triggers: no run can go more queries without gain than its
# budget allows (a budget above a billion raises it; see Comparison.config).
NO_STALLING = 10**9


@dataclass(frozen=True)
class Comparison:
    """What a comparison runs: every strategy on the same digits, runs, seed and budget.

    ``allow_engine_change`` lets a resumed sweep score with another engine than the one it
    started with (its record then lists both).
    """

    strategies: tuple[str, ...]
    digits: tuple[int, ...] | None  # None: every class of the model
    runs: int
    max_queries: int
    seed: int = 0
    start: str = "blank"
    allow_engine_change: bool = False

    def config(self, strategy: str) -> SweepConfig:
        """The sweep ``strategy`` runs: to the highest threshold or the budget, never stuck."""
        return SweepConfig(
            digits=self.digits,
            runs=self.runs,
            strategy=strategy,
            seed=self.seed,
            target=max(THRESHOLDS),
            # max(): a saved comparison's settings, and so its resumption, stay as they were.
            patience=max(NO_STALLING, self.max_queries + 1),
            max_queries=self.max_queries,
            start=self.start,
        )


def reach_table(
    results: dict[str, Any], thresholds: Sequence[float] = THRESHOLDS
) -> list[dict[str, Any]]:
    """For every run of a sweep: its digit and the queries it needed for each threshold."""
    cost = (
        results.get("queries_per_step")
        or StrategySpec(results["settings"]["strategy"], results["settings"]["strategy_settings"])
        .make()
        .queries_per_step
    )
    return [
        {
            "digit": run["digit"],
            **{
                str(t): queries_to_reach(run["history"], t, queries_per_step=cost)
                for t in thresholds
            },
        }
        for run in results["runs"]
    ]


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    success, intervals, medians = {}, {}, {}
    for t in map(str, THRESHOLDS):
        reached = sorted(r[t] for r in rows if r[t] is not None)
        success[t] = len(reached) / len(rows) if rows else 0.0
        intervals[t] = list(wilson_interval(len(reached), len(rows)))
        medians[t] = median(reached)
    return {"success": success, "success_ci95": intervals, "median_queries": medians}


def summarise_strategy(results: dict[str, Any]) -> dict[str, Any]:
    """Success rates and median queries per threshold, overall and per digit, and seconds."""
    rows = reach_table(results)
    digits = sorted({r["digit"] for r in rows})
    return {
        **_summary(rows),
        "per_digit": {str(d): _summary([r for r in rows if r["digit"] == d]) for d in digits},
        "max_queries": results["settings"]["max_queries"],
        "seconds": results["seconds"],
    }


# Runs one sweep into a folder: (classifier, config, folder, hooks, options) -> its outcome.
SweepRunner = Callable[[Classifier, SweepConfig, Path, RunHooks, SweepOptions], SweepOutcome]


def on_this_machine(
    classifier: Classifier,
    config: SweepConfig,
    folder: Path,
    hooks: RunHooks,
    options: SweepOptions,
) -> SweepOutcome:
    """The sweep run here: :func:`~identikit.sweeps.sweep.sweep_to_folder`."""
    return sweep_to_folder(classifier, config, folder, hooks=hooks, options=options)


def run_comparison(
    classifier: Classifier,
    comparison: Comparison,
    out: str | os.PathLike[str],
    *,
    options: SweepOptions = DEFAULT_OPTIONS,
    hooks: RunHooks = NO_HOOKS,
    runner: SweepRunner = on_this_machine,
) -> dict[str, dict[str, Any]] | None:
    """Run every strategy's sweep into ``out/<strategy>`` (each resumable) with ``runner``
    (on this machine, or on a cluster); ``options.model_path`` is the model file the records
    name, and ``comparison.allow_engine_change`` overrides ``options``' own.

    Returns each strategy's ``results.json`` record, or None when paused.
    """
    by_strategy: dict[str, dict[str, Any]] = {}
    options = replace(options, allow_engine_change=comparison.allow_engine_change)
    for name in comparison.strategies:
        # Each strategy's folder is the comparison's own: made here, and refused where it is
        # a link (its sweep would be written, and its leftovers removed, wherever it leads).
        with opened_folder(out, Path(out) / name):
            pass
    for name in comparison.strategies:
        outcome = runner(classifier, comparison.config(name), Path(out) / name, hooks, options)
        if outcome.results is None:
            return None
        by_strategy[name] = outcome.results
    return by_strategy


def curves(
    results_by_strategy: dict[str, dict[str, Any]], threshold: float = 0.99
) -> dict[str, tuple[list[int], list[float]]]:
    """Per strategy: query counts and the fraction of runs at ``threshold`` by then."""
    out = {}
    for name, results in results_by_strategy.items():
        needed = sorted(
            r[str(threshold)]
            for r in reach_table(results, [threshold])
            if r[str(threshold)] is not None
        )
        total = len(results["runs"])
        out[name] = (needed, [(i + 1) / total for i in range(len(needed))])
    return out
