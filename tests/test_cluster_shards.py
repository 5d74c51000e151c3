"""Shards: every run in exactly one, several per worker, runs of every class in each; the plan
and the finished shards kept in the folder, and a folder of another sweep refused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.cluster.shards import (
    PLAN_FILE,
    ShardError,
    ShardFolder,
    ShardPlan,
    plan_shards,
    shard_name,
)
from identikit.strategies import initial_state
from identikit.strategies.stopping import CONVERGED
from identikit.sweeps.experiment import SweepConfig, sweep_identity
from identikit.sweeps.folder import SHARDS_FOLDER
from identikit.sweeps.sweep_state import state_bytes
from tests.helpers import classifier, rewrite_npz


@pytest.mark.parametrize(
    ("runs", "workers", "cost"),
    [(200, 2, 500), (8, 2, 100), (10_000, 100, 500), (3, 8, 500), (200, 2, 1), (1, 1, 1)],
)
def test_every_run_is_in_exactly_one_shard_and_shards_are_even(
    runs: int, workers: int, cost: int
) -> None:
    plan = plan_shards(runs, workers, cost)
    rows = [row for k in range(plan.shards) for row in plan.rows(k)]
    assert sorted(rows) == list(range(runs))
    sizes = [len(plan.rows(k)) for k in range(plan.shards)]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert min(runs, workers) <= plan.shards <= 4 * workers


def test_several_shards_per_worker_where_the_runs_allow() -> None:
    assert plan_shards(200, 2, 500).shards == 8  # the benchmark's 10 x 20 sweep
    assert plan_shards(10_000, 100, 500).shards == 400
    # Cheap steps: a shard needs more runs to fill the engine's batches, so there are fewer
    # shards, but never fewer than workers.
    assert plan_shards(200, 2, 100).shards == 8
    assert plan_shards(200, 2, 1).shards == 2
    assert plan_shards(50_000, 2, 1).shards == 8


def test_shard_runs_sets_their_size() -> None:
    assert plan_shards(200, 2, 500, shard_runs=7).shards == 29
    assert plan_shards(5, 2, 500, shard_runs=1).shards == 5
    with pytest.raises(IdentikitError, match="--shard-runs"):
        plan_shards(5, 2, 500, shard_runs=0)


def test_every_shard_holds_runs_of_every_class() -> None:
    layout = SweepConfig(runs=20).for_classes(10).layout()  # every class of a 10-class model
    plan = plan_shards(len(layout), 2, 500)
    for k in range(plan.shards):
        assert {layout[row][0] for row in plan.rows(k)} == set(range(10))


def identity(**changes: Any) -> dict[str, Any]:
    return sweep_identity(classifier(), SweepConfig(digits=(0, 1), runs=2, **changes))


def test_the_plan_is_kept_and_another_sweeps_refused(tmp_path: Path) -> None:
    ShardFolder(tmp_path, identity()).write_plan(ShardPlan(3, 4), 1.5)
    assert ShardFolder(tmp_path, identity()).read_plan() == (ShardPlan(3, 4), 1.5)
    with pytest.raises(DifferentSweepError, match=r"--seed: 0 -> 9"):
        ShardFolder(tmp_path, identity(seed=9)).read_plan()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"shards": 2}', '{"shards": 9, "runs": 4}'])
def test_a_damaged_plan_is_one_line(tmp_path: Path, text: str) -> None:
    shards = ShardFolder(tmp_path, identity())
    shards.write_plan(ShardPlan(3, 4), 0.0)
    (shards.path / PLAN_FILE).write_text(text)
    with pytest.raises(IdentikitError, match="delete") as error:
        shards.read_plan()
    assert "\n" not in str(error.value)


# Where a shard ran, as a worker records it.
WHERE = {"engine": {"backend": "torch"}, "scoring": {}, "host": "h", "node": "a"}


def finished_shard(record: dict[str, Any], rows: list[int], *, finish: bool = True) -> bytes:
    """A shard file's bytes: the runs ``rows`` of the sweep, at their start, marked finished."""
    config = SweepConfig(digits=(0, 1), runs=2)
    layout = config.layout()
    state = initial_state(classifier(), [layout[r][0] for r in rows], [layout[r][2] for r in rows])
    if finish:
        state.status[:] = CONVERGED
    return state_bytes(record, state, seconds=2.0)


def test_a_shard_is_read_back_only_when_it_is_this_plans(tmp_path: Path) -> None:
    shards = ShardFolder(tmp_path, identity())
    plan = ShardPlan(2, 4)
    assert shards.read_shard(plan, 0, classifier().info.input_shape) is None
    good = {"sweep": identity(), "shard": 0, "rows": [0, 2], **WHERE}
    cases = {
        "another sweep": ({**good, "sweep": identity(seed=1)}, [0, 2], True),
        "other runs": ({**good, "rows": [1, 3]}, [1, 3], True),
        "not finished": (good, [0, 2], False),
    }
    shape = classifier().info.input_shape
    for problem, (record, rows, finish) in cases.items():
        shards.write_shard(0, finished_shard(record, rows, finish=finish))
        with pytest.raises(ShardError) as error:
            shards.read_shard(plan, 0, shape)
        assert shard_name(0) in str(error.value), problem
    shards.write_shard(0, finished_shard(good, [0, 2]))
    read = shards.read_shard(plan, 0, shape)
    assert read is not None
    record, state, seconds = read
    layout = SweepConfig(digits=(0, 1), runs=2).layout()
    assert record == good and seconds == 2.0
    assert state.seeds == [layout[0][2], layout[2][2]]
    assert (tmp_path / SHARDS_FOLDER / shard_name(0)).is_file()
    shards.remove()
    assert not (tmp_path / SHARDS_FOLDER).exists()


def linked_shards(tmp_path: Path) -> tuple[ShardFolder, Path]:
    """A sweep folder whose ``shards`` is a link to a user's folder holding a file of theirs."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("user data")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / SHARDS_FOLDER).symlink_to(outside)
    return ShardFolder(sweep, identity()), outside


def test_a_linked_shards_folder_is_never_written_through(tmp_path: Path) -> None:
    shards, outside = linked_shards(tmp_path)
    with pytest.raises(IdentikitError, match="is a link; refusing to write") as error:
        shards.write_plan(ShardPlan(2, 4), 0.0)
    assert str(shards.path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(IdentikitError, match="is a link; refusing to write"):
        shards.write_shard(0, b"shard")
    # The first question a Ray sweep asks refuses it too, before Ray starts or a plan is read.
    (outside / PLAN_FILE).write_text("{}")
    with pytest.raises(IdentikitError, match="is a link; refusing to work through it"):
        shards.exists()
    assert sorted(p.name for p in outside.iterdir()) == [PLAN_FILE, "precious.txt"]


def test_removing_a_linked_shards_folder_deletes_nothing_outside(tmp_path: Path) -> None:
    shards, outside = linked_shards(tmp_path)
    (outside / PLAN_FILE).write_text("{}")  # what the old code would have written there
    with pytest.raises(IdentikitError, match="is a link"):
        shards.remove()
    assert sorted(p.name for p in outside.iterdir()) == [PLAN_FILE, "precious.txt"]


def test_removing_shards_deletes_only_their_own_regular_files(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("user data")
    shards = ShardFolder(tmp_path / "sweep", identity())
    shards.write_plan(ShardPlan(2, 4), 0.0)
    (shards.path / "link").symlink_to(victim)
    shards.remove()
    assert victim.read_text() == "user data"
    # A link is not ours to delete, and keeps the folder.
    assert [p.name for p in shards.path.iterdir()] == ["link"]


# --- Tampered cluster files: refused before any work, a bad shard set aside -------------------

SHARD_CASES: dict[str, tuple[Callable[[dict[str, np.ndarray]], dict[str, Any]], str]] = {
    "NaN images": (lambda a: {**a, "images": a["images"] * np.nan}, "not finite"),
    "images above 1": (lambda a: {**a, "images": a["images"] + 5}, "outside [0, 1]"),
    "scores of -5": (lambda a: {**a, "scores": a["scores"] * 0 - 5}, "history ends at"),
    "positive scores": (lambda a: {**a, "scores": a["scores"] * 0 + 3}, "log-probability"),
    "other targets": (lambda a: {**a, "targets": 1 - a["targets"]}, "classes are not"),
    "other seeds": (lambda a: {**a, "seeds": a["seeds"] + 1}, "seeds are not"),
    "negative queries": (lambda a: {**a, "queries": a["queries"] * 0 - 3}, "negative"),
    "version 0": (lambda a: {**a, "version": np.array(0)}, "format version 0"),
    "version -5": (lambda a: {**a, "version": np.array(-5)}, "format version -5"),
}


@pytest.mark.parametrize("case", sorted(SHARD_CASES))
def test_a_tampered_shard_is_refused_and_set_aside(tmp_path: Path, case: str) -> None:
    change, message = SHARD_CASES[case]
    shards = ShardFolder(tmp_path, identity())
    plan, shape = ShardPlan(2, 4), classifier().info.input_shape
    good = {"sweep": identity(), "shard": 0, "rows": [0, 2], **WHERE}
    shards.write_shard(0, finished_shard(good, [0, 2]))
    assert shards.read_shard(plan, 0, shape) is not None  # sound before the edit
    rewrite_npz(shards.path / shard_name(0), change)
    with pytest.raises(ShardError, match=re.escape(message)) as error:
        shards.read_shard(plan, 0, shape)
    assert str(error.value).startswith(str(shards.path / shard_name(0)))
    assert "\n" not in str(error.value)
    edited = (shards.path / shard_name(0)).read_bytes()
    # Set aside out of shards/ (which goes when the sweep is written), the first free name.
    assert shards.set_aside(0) == tmp_path / "shard-00000.bad-1.npz"
    assert (tmp_path / "shard-00000.bad-1.npz").read_bytes() == edited
    assert shards.read_shard(plan, 0, shape) is None  # its runs are searched again
    shards.write_shard(0, edited)
    assert shards.set_aside(0) == tmp_path / "shard-00000.bad-2.npz"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"runs": 2}, "2 shards of 2 runs, for a sweep of 4 runs"),
        ({"runs": 32}, "2 shards of 32 runs, for a sweep of 4 runs"),
        ({"shards": 10**8, "runs": 10**8}, "100000000 shards of 100000000 runs"),
        ({"shards": 0}, "0 shards of 4 runs"),
        ({"seconds": float("nan")}, "seconds = nan is not a time"),
        ({"seconds": -1e300}, "seconds = -1e+300 is not a time"),
        ({"seconds": True}, "seconds is not a number"),
        ({"shards": 2.5}, "shards is not a whole number"),
        ({"runs": "4"}, "runs is not a whole number"),
        ({"format": "other"}, "not an identikit-shards record"),
    ],
)
def test_a_tampered_plan_is_one_line_before_any_work(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    shards = ShardFolder(tmp_path, identity())
    shards.write_plan(ShardPlan(2, 4), 1.0)
    record = json.loads((shards.path / PLAN_FILE).read_text())
    (shards.path / PLAN_FILE).write_text(json.dumps({**record, **change}))
    with pytest.raises(IdentikitError, match=re.escape(message)) as error:
        shards.read_plan()
    assert f"delete {shards.path} to start the sweep afresh" in str(error.value)
    assert "\n" not in str(error.value)
