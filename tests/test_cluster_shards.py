"""Shards: every run in exactly one, several per worker, runs of every class in each; the plan
and the finished shards kept in the folder, and a folder of another sweep refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.cluster.shards import PLAN_FILE, ShardFolder, ShardPlan, plan_shards, shard_name
from identikit.strategies import initial_state
from identikit.strategies.stopping import CONVERGED
from identikit.sweeps.experiment import SweepConfig, sweep_identity
from identikit.sweeps.folder import SHARDS_FOLDER
from identikit.sweeps.sweep_state import state_bytes
from tests.helpers import classifier


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
    layout = SweepConfig(runs=20).layout()
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
    good = {"sweep": identity(), "rows": [0, 2], "node": "a"}
    cases = {
        "another sweep": ({**good, "sweep": identity(seed=1)}, [0, 2], True),
        "other runs": ({**good, "rows": [1, 3]}, [1, 3], True),
        "not finished": (good, [0, 2], False),
    }
    shape = classifier().info.input_shape
    for problem, (record, rows, finish) in cases.items():
        shards.write_shard(0, finished_shard(record, rows, finish=finish))
        with pytest.raises(IdentikitError, match="delete it to search the shard again") as error:
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
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


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
