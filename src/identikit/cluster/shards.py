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

import itertools
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
from identikit.sweeps.experiment import SweepConfig, identity_differences
from identikit.sweeps.folder import SHARDS_FOLDER
from identikit.sweeps.sweep_state import UnreadableState, load_state

PLAN_FILE = "plan.json"
PLAN_FORMAT = "identikit-shards"
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
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


class ShardError(IdentikitError):
    """A shard file that cannot be kept: damaged, edited, or of other runs. Its shard is
    searched again."""


def _free_name(folder: int, stem: str) -> str:
    """``STEM.bad-N.npz``, the first N that names nothing in ``folder`` (a descriptor). The
    caller holds the sweep folder's lock: nobody takes the name meanwhile."""
    for n in itertools.count(1):
        name = f"{stem}.bad-{n}.npz"
        try:
            os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return name
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends


def _not_set_aside(path: Path, exc: OSError) -> IdentikitError:
    return IdentikitError(
        f"cannot set {path} aside ({exc.strerror or exc}); delete it to search the shard again"
    )


def _whole(value: Any, name: str) -> int:
    """A count from plan.json: a JSON whole number (not a text, a fraction or true)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"its {name} is not a whole number")
    return value


def _seconds(value: Any) -> float:
    """The seconds from plan.json: a finite number of at least 0 (JSON's NaN included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("its seconds is not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"its seconds = {value} is not a time")
    return float(value)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


class ShardFolder:
    """The ``shards`` folder of one sweep: its plan and its finished shards."""

    def __init__(self, sweep_folder: Path, identity: dict[str, Any]) -> None:
        self.path = sweep_folder / SHARDS_FOLDER
        self.identity = identity  # the sweep's, as recorded in the plan and every shard

    def exists(self) -> bool:
        """Whether the sweep has begun on a cluster; a ``shards`` that is a link is refused
        here, the first thing a Ray sweep asks, before Ray starts or any file is read."""
        if self.path.is_symlink():
            raise IdentikitError(f"{self.path} is a link; refusing to work through it (remove it)")
        return os.path.lexists(self.path / PLAN_FILE)

    @property
    def layout(self) -> list[tuple[int, int, int]]:
        """(digit, run, seed) of each of the sweep's runs, from its identity's settings (the
        caller's, never a file's): what every shard's runs must be."""
        settings = self.identity["settings"]
        config = SweepConfig(
            digits=tuple(settings["digits"]), runs=settings["runs"], seed=settings["seed"]
        )
        return config.layout()

    def read_plan(self) -> tuple[ShardPlan, float]:
        """The plan recorded when the sweep began and the seconds spent on it so far; a plan
        of another sweep is refused, naming what differs.

        Every field is checked before any shard is searched: the runs must be this sweep's,
        the shards between 1 and the runs, the seconds a finite number of at least 0. A plan
        that fails is one line saying what to do (the shards were split by it: no other plan
        can take its place and keep them).
        """
        path = self.path / PLAN_FILE
        try:
            record = json.loads(read_regular(path))
            if not isinstance(record, dict) or record.get("format") != PLAN_FORMAT:
                raise TypeError(f"it is not an {PLAN_FORMAT} record")
            saved = record["sweep"]
            if not isinstance(saved, dict):
                raise TypeError("its sweep is not an object")
            shards, runs = _whole(record["shards"], "shards"), _whole(record["runs"], "runs")
            seconds = _seconds(record["seconds"])
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
        expected = len(self.layout)
        if runs != expected or not 1 <= shards <= runs:
            raise IdentikitError(
                f"{path} is damaged ({shards} shards of {runs} runs, for a sweep of {expected} "
                f"runs); delete {self.path} to start the sweep afresh"
            )
        return ShardPlan(shards, runs), seconds

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

        The file is checked as strictly as a sweep's own state (:func:`load_state`: kinds,
        shapes, finite pixels in [0, 1], log-probabilities, counts), and more: it must be this
        sweep's, hold the runs the plan gives the shard (their classes and seeds as the
        sweep's layout has them), all finished, and say where it ran. Anything else is a
        :class:`ShardError` naming the file: the caller sets it aside and searches it again.
        """
        name = shard_name(index)
        try:
            saved = load_state(self.path, torch.device("cpu"), shape, name)
        except UnreadableState as exc:
            raise ShardError(f"{self.path / name}: {exc.reason}") from None
        if saved is None:
            return None
        record, state, seconds = saved
        problem = self._problem(plan, index, record, state)
        if problem is not None:
            raise ShardError(f"{self.path / name}: {problem}")
        return record, state, seconds

    def _problem(
        self, plan: ShardPlan, index: int, record: dict[str, Any], state: SearchState
    ) -> str | None:
        """What is wrong with a shard whose file reads as a state, or None."""
        rows = plan.rows(index)
        layout = self.layout
        if record.get("sweep") != self.identity:
            return "it belongs to another sweep"
        if record.get("rows") != rows or record.get("shard") != index:
            return "it holds other runs than the plan gives it"
        # The classes and seeds are the runs themselves: a shard whose targets were edited
        # would be recorded as a search for classes it never searched.
        if state.targets.tolist() != [layout[r][0] for r in rows]:
            return "its runs' classes are not the sweep's"
        if state.seeds != [layout[r][2] for r in rows]:
            return "its runs' seeds are not the sweep's"
        if bool((state.status == ACTIVE).any()):
            return "its runs have not finished"
        for key in ("engine", "scoring"):
            if not isinstance(record.get(key), dict):
                return f"its {key} is not a record"
        for key in ("host", "node"):
            if not isinstance(record.get(key), str):
                return f"its {key} is not a name"
        return None

    def set_aside(self, index: int) -> Path:
        """Move shard ``index``'s file out of ``shards/`` into the sweep's folder, as
        ``shard-K.bad-N.npz`` (the first N free), and return its new path.

        A refused shard is kept for whoever wants to see what was wrong with it, out of
        ``shards/`` (which goes once the sweep is written); its runs are searched again.
        Both folders are opened once and the file renamed between them, ``shards`` never
        through a link.
        """
        name = shard_name(index)
        try:
            parent = os.open(self.path.parent, _FOLDER)
        except OSError as exc:
            raise _not_set_aside(self.path / name, exc) from None
        try:
            shards = os.open(SHARDS_FOLDER, _FOLDER | os.O_NOFOLLOW, dir_fd=parent)
            try:
                aside = _free_name(parent, name.removesuffix(".npz"))
                os.rename(name, aside, src_dir_fd=shards, dst_dir_fd=parent)
            finally:
                os.close(shards)
        except OSError as exc:
            raise _not_set_aside(self.path / name, exc) from None
        finally:
            os.close(parent)
        return self.path.parent / aside

    def remove(self) -> None:
        """Remove the shards folder once the whole sweep is written: its state holds them all.

        Only regular files in the folder itself are deleted: a ``shards`` that is a link is
        refused (the files it leads to are not ours), and what is not a regular file keeps
        the folder.
        """
        remove_folder(self.path.parent, self.path)
