"""One progress bar over every shard of a cluster's sweep, live while the shards run.

Each worker reports its shard's counts (runs finished, converged, stuck) to a
:class:`ProgressBoard` (a Ray actor on the cluster) at most once a second, as its groups are
committed; the driver reads the board about once a second and adds the counts of the shards
already in. A shard run again after its worker died starts its counts afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tqdm import tqdm

from identikit.cluster.shards import ShardPlan
from identikit.strategies import SearchState
from identikit.strategies.stopping import ACTIVE, CONVERGED, STUCK

Counts = tuple[int, int, int]  # runs finished, converged, stuck
REPORT_SECONDS = 1.0  # how often a worker reports, at most


def counts(state: SearchState) -> Counts:
    status = state.status.tolist()
    return len(status) - status.count(ACTIVE), status.count(CONVERGED), status.count(STUCK)


class ProgressBoard:
    """The latest counts of every running shard (run as a Ray actor)."""

    def __init__(self) -> None:
        self.shards: dict[int, Counts] = {}

    def report(self, shard: int, counted: Counts) -> None:
        self.shards[shard] = counted

    def snapshot(self) -> dict[int, Counts]:
        return dict(self.shards)


class Throttled:
    """A search's commit hook that sends its state's counts at most every ``every`` seconds."""

    def __init__(self, send: Callable[[Counts], None], every: float = REPORT_SECONDS) -> None:
        self.send = send
        self.every = every
        # Never reported: the first call sends (monotonic time may be below ``every`` on a
        # machine up for less than that).
        self.last = -math.inf

    def __call__(self, state: SearchState) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.send(counts(state))


class ShardProgress:
    """The bar: runs finished over the whole sweep, converged and stuck so far, shards in."""

    def __init__(self, plan: ShardPlan, *, enabled: bool) -> None:
        self.plan = plan
        self.finished: dict[int, Counts] = {}
        self.running: dict[int, Counts] = {}
        self.bar = tqdm(
            total=plan.runs,
            desc="search",
            unit="run",
            disable=not enabled,
            dynamic_ncols=True,
            leave=False,
        )
        self._show()

    def shard_in(self, index: int, state: SearchState) -> None:
        self.finished[index] = counts(state)
        self._show()

    def live(self, snapshot: dict[int, Counts]) -> None:
        self.running = snapshot
        self._show()

    def totals(self) -> Counts:
        """Runs finished, converged and stuck over every shard so far."""
        # A shard in counts as it ended, whatever its worker last reported.
        every = {**self.running, **self.finished}
        done, converged, stuck = (sum(c[i] for c in every.values()) for i in range(3))
        return done, converged, stuck

    def _show(self) -> None:
        done, converged, stuck = self.totals()
        self.bar.set_postfix_str(
            f"shards {len(self.finished)}/{self.plan.shards} converged {converged} stuck {stuck}",
            refresh=False,
        )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()
