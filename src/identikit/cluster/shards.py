"""Shards: the runs of one sweep split into parts that workers search, each kept as it arrives.

A shard is a set of the sweep's runs (rows of its layout, see
:meth:`~identikit.sweeps.experiment.SweepConfig.layout`). Each shard takes every S-th run, so
that every shard holds runs of every class: classes converge at different speeds, and shards
of one class each would finish at very different times.

How many shards: every worker must stay busy, so there are several per worker (the last shard
to start then leaves the others idle for a fraction of one worker's share only), and each must
be large enough that its batches of candidates still fill the engine (a step of a shard's runs
is at least :data:`MIN_SHARD_IMAGES` images). A worker loads the model once and keeps it for
every later shard, so its start-up is paid once per worker, not once per shard.

The folder of a sweep run on a cluster holds ``shards/plan.json`` (the number of shards, fixed
when the sweep begins, so that a resumed sweep splits its runs as the first did, whatever the
cluster then has) and ``shards/shard-K.npz`` for each finished shard: the final search state of
its runs (:mod:`identikit.sweeps.sweep_state`'s format), with the sweep's identity, the engine
that scored it and the node that ran it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.base.safe_files import read_regular
from identikit.base.safe_folders import remove_folder
from identikit.base.shapes import ImageShape
from identikit.strategies import SearchState
from identikit.strategies.stopping import ACTIVE
from identikit.sweeps.experiment import identity_differences
from identikit.sweeps.folder import SHARDS_FOLDER
from identikit.sweeps.sweep_state import load_state

PLAN_FILE = "plan.json"
# Shards per worker: with k, the last shard to start idles the others for about 1/k of one
# worker's share of the sweep.
SHARDS_PER_WORKER = 4
# Candidate images one step of a shard scores at least, where the sweep has runs enough: below
# about this, forward passes are too small to run the engine at its rate.
MIN_SHARD_IMAGES = 2048


@dataclass(frozen=True)
class ShardPlan:
    """How a sweep of ``runs`` runs is split: shard k holds runs k, k + shards, k + 2 shards..."""

    shards: int
    runs: int

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= self.runs:
            raise IdentikitError(f"{self.shards} shards for {self.runs} runs")

    def rows(self, index: int) -> list[int]:
        """The rows of the sweep's layout that shard ``index`` holds."""
        return list(range(index, self.runs, self.shards))


def plan_shards(
    runs: int, workers: int, step_cost: int, *, shard_runs: int | None = None
) -> ShardPlan:
    """The shards of a sweep of ``runs`` runs for ``workers`` workers, each step of a run
    scoring ``step_cost`` images; ``shard_runs`` asks for shards of about that many runs."""
    if shard_runs is not None:
        if shard_runs < 1:
            raise IdentikitError(f"--shard-runs must be at least 1, got {shard_runs}")
        return ShardPlan(math.ceil(runs / shard_runs), runs)
    smallest = math.ceil(MIN_SHARD_IMAGES / max(1, step_cost))  # runs of the smallest shard
    shards = min(SHARDS_PER_WORKER * max(1, workers), runs // smallest)
    return ShardPlan(max(1, min(runs, max(workers, shards))), runs)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


class ShardFolder:
    """The ``shards`` folder of one sweep: its plan and its finished shards."""

    def __init__(self, sweep_folder: Path, identity: dict[str, Any]) -> None:
        self.path = sweep_folder / SHARDS_FOLDER
        self.identity = identity  # the sweep's, as recorded in the plan and every shard

    def exists(self) -> bool:
        return os.path.lexists(self.path / PLAN_FILE)

    def read_plan(self) -> tuple[ShardPlan, float]:
        """The plan recorded when the sweep began and the seconds spent on it so far; a plan
        of another sweep is refused, naming what differs."""
        path = self.path / PLAN_FILE
        try:
            record = json.loads(read_regular(path))
            plan = ShardPlan(int(record["shards"]), int(record["runs"]))
            seconds = float(record["seconds"])
            saved = record["sweep"]
            if not isinstance(saved, dict):
                raise TypeError("its sweep is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise IdentikitError(
                f"{path} is damaged ({exc}); delete {self.path} to start the sweep afresh"
            ) from None
        except IdentikitError as exc:
            raise IdentikitError(f"{exc}; delete {self.path} to start the sweep afresh") from None
        differences = identity_differences(saved, self.identity)
        if differences:
            raise DifferentSweepError(
                f"{self.path.parent} already holds a different sweep ({'; '.join(differences)}): "
                "use another --out, or the saved settings to resume it"
            )
        return plan, seconds

    def write_plan(self, plan: ShardPlan, seconds: float) -> None:
        """Record the plan in ``shards/`` (made here, never through a link: see
        :mod:`identikit.base.safe_folders`)."""
        record = {
            "format": "identikit-shards",
            "sweep": self.identity,
            "shards": plan.shards,
            "runs": plan.runs,
            "seconds": round(seconds, 3),
        }
        atomic_write_text(
            self.path / PLAN_FILE, json.dumps(record, indent=1), root=self.path.parent
        )

    def write_shard(self, index: int, data: bytes) -> None:
        """Keep a finished shard's state file, as its worker made it."""
        atomic_write_bytes(self.path / shard_name(index), data, root=self.path.parent)

    def read_shard(
        self, plan: ShardPlan, index: int, shape: ImageShape
    ) -> tuple[dict[str, Any], SearchState, float] | None:
        """Shard ``index``'s record, final state and seconds of search, or None where it has
        not finished.

        A shard file of another sweep, of other runs, or with runs still searching is refused:
        the folder was edited, and its shard must be searched again.
        """
        name = shard_name(index)
        saved = load_state(self.path, torch.device("cpu"), shape, name)
        if saved is None:
            return None
        record, state, seconds = saved
        problem = None
        if record.get("sweep") != self.identity:
            problem = "it belongs to another sweep"
        elif record.get("rows") != plan.rows(index) or len(state.seeds) != len(plan.rows(index)):
            problem = "it holds other runs than the plan gives it"
        elif bool((state.status == ACTIVE).any()):
            problem = "its runs have not finished"
        if problem is not None:
            raise IdentikitError(
                f"{self.path / name}: {problem}; delete it to search the shard again"
            )
        return record, state, seconds

    def remove(self) -> None:
        """Remove the shards folder once the whole sweep is written: its state holds them all.

        Only regular files in the folder itself are deleted: a ``shards`` that is a link is
        refused (the files it leads to are not ours), and what is not a regular file keeps
        the folder.
        """
        remove_folder(self.path.parent, self.path)
