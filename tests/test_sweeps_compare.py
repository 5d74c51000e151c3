"""Comparisons: every strategy on the same digits, seeds and budget, summarised per threshold, in
the library and at the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from identikit.base.errors import IdentikitError
from identikit.strategies import RunHooks
from identikit.sweeps.compare import (
    NO_STALLING,
    THRESHOLDS,
    Comparison,
    curves,
    reach_table,
    run_comparison,
    summarise_strategy,
)
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.result_files import read_comparison, write_comparison
from identikit.sweeps.sweep import SweepOptions
from tests.helpers import assert_one_line_error, classifier, run_cli

COMPARISON = Comparison(("random-masks", "square"), digits=(0, 3), runs=2, max_queries=300, seed=4)


Compared = tuple[Path, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Compared:
    """A finished comparison of two strategies: 2 digits x 2 runs each, 300 queries a run."""
    out = tmp_path_factory.mktemp("compare")
    by_strategy = run_comparison(
        classifier(), COMPARISON, out, options=SweepOptions(progress=False)
    )
    assert by_strategy is not None
    return out, by_strategy


def test_every_strategy_runs_the_same_sweep_to_the_budget() -> None:
    configs = [COMPARISON.config(name) for name in COMPARISON.strategies]
    assert [c.strategy for c in configs] == list(COMPARISON.strategies)
    for config in configs:
        assert config.layout() == configs[0].layout()  # the same digits, runs and seeds
        assert config.target == max(THRESHOLDS) and config.max_queries == 300
        assert config.patience >= NO_STALLING  # no run ends as stuck
    huge = Comparison(("square",), digits=(1,), runs=1, max_queries=NO_STALLING + 5)
    assert huge.config("square").patience > huge.max_queries


def test_each_strategys_sweep_is_in_its_own_folder(
    compared: Compared,
) -> None:
    out, by_strategy = compared
    assert list(by_strategy) == list(COMPARISON.strategies)
    for name, results in by_strategy.items():
        read = read_sweep_folder(out / name)
        assert read.results == results
        wanted = COMPARISON.config(name)
        assert read.config.layout() == wanted.layout() and read.config.strategy == name
        assert (read.config.target, read.config.patience) == (wanted.target, wanted.patience)
        assert all(run["queries"] <= 300 for run in results["runs"])


def test_summaries_read_back_from_compare_json(
    compared: Compared,
    tmp_path: Path,
) -> None:
    _, by_strategy = compared
    summary = {name: summarise_strategy(r) for name, r in by_strategy.items()}
    for name, row in summary.items():
        reached = reach_table(by_strategy[name])
        assert len(reached) == 4
        for t in map(str, THRESHOLDS):
            assert row["success"][t] == sum(r[t] is not None for r in reached) / 4
        assert set(row["per_digit"]) == {"0", "3"}
    write_comparison(tmp_path, summary)
    rows = read_comparison(tmp_path, [str(t) for t in THRESHOLDS])
    for name, row in rows.items():
        assert row["success"] == summary[name]["success"]
        assert row["median_queries"] == summary[name]["median_queries"]
        assert row["seconds"] == summary[name]["seconds"]


def test_curves_count_runs_reaching_the_threshold(
    compared: Compared,
) -> None:
    _, by_strategy = compared
    for name, (queries, fractions) in curves(by_strategy).items():
        reached = [r["0.99"] for r in reach_table(by_strategy[name]) if r["0.99"] is not None]
        assert queries == sorted(reached)
        assert fractions == [(i + 1) / 4 for i in range(len(queries))]


def test_a_paused_comparison_returns_nothing_and_resumes(tmp_path: Path) -> None:
    stop = run_comparison(
        classifier(),
        COMPARISON,
        tmp_path,
        options=SweepOptions(progress=False),
        hooks=RunHooks(should_stop=lambda: True),
    )
    assert stop is None
    resumed = run_comparison(
        classifier(), COMPARISON, tmp_path, options=SweepOptions(progress=False)
    )
    assert resumed is not None and list(resumed) == list(COMPARISON.strategies)


def test_compare_cli(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = run_cli(
        "compare",
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--digits",
        "1,2",
        "--runs",
        "2",
        "--max-queries",
        "600",
        "--strategies",
        "square,gradient",
        "--json",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary) == {"square", "gradient"}
    for name, row in summary.items():
        assert set(row["success"]) == set(row["median_queries"]) == {"0.99", "0.999", "0.9999"}
        assert set(row["per_digit"]) == {"1", "2"} and row["seconds"] > 0
        results = json.loads((out / name / "results.json").read_text())
        assert results["settings"]["max_queries"] == 600
        assert summarise_strategy(results)["success"] == row["success"]
        table = reach_table(results)
        assert row["success"]["0.99"] == sum(r["0.99"] is not None for r in table) / 4
    assert (out / "curves.png").stat().st_size > 1000
    assert_one_line_error(
        run_cli(
            "compare", "--model", str(tiny_model), "--out", str(out), "--strategies", "square,magic"
        ),
        "magic",
    )


def test_a_strategys_folder_that_is_a_link_is_refused_before_any_search(tmp_path: Path) -> None:
    """``out/<strategy>`` is the comparison's own folder: one linked elsewhere would have had a
    sweep written (and a killed writer's leftovers removed) wherever it leads."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "compare"
    out.mkdir()
    (out / "square").symlink_to(elsewhere)
    with pytest.raises(IdentikitError, match="square is a link; refusing to write through it"):
        run_comparison(classifier(), COMPARISON, out, options=SweepOptions(progress=False))
    assert list(elsewhere.iterdir()) == []
    # The first strategy's folder was made, but nothing was searched in it.
    assert list((out / "random-masks").iterdir()) == []
