"""The cluster's progress bar: live counts of running shards, final ones of shards in."""

from __future__ import annotations

import torch

from identikit.cluster.progress import ProgressBoard, ShardProgress, Throttled, counts
from identikit.cluster.shards import ShardPlan
from identikit.strategies import SearchState, initial_state
from identikit.strategies.stopping import ACTIVE, CONVERGED, STUCK
from tests.helpers import classifier


def state_with(*status: int) -> SearchState:
    state = initial_state(classifier(), [0] * len(status), list(range(len(status))))
    state.status = torch.tensor(status, dtype=torch.int8)
    return state


def test_counts_are_runs_finished_converged_and_stuck() -> None:
    assert counts(state_with(ACTIVE, CONVERGED, STUCK, CONVERGED)) == (3, 2, 1)


def test_a_shard_in_counts_as_it_ended_whatever_its_worker_last_said() -> None:
    progress = ShardProgress(ShardPlan(2, 8), enabled=False)
    board = ProgressBoard()
    board.report(0, (1, 1, 0))
    board.report(1, (2, 1, 1))
    progress.live(board.snapshot())
    assert progress.totals() == (3, 2, 1)
    progress.shard_in(0, state_with(CONVERGED, CONVERGED, STUCK, CONVERGED))
    assert progress.totals() == (4 + 2, 3 + 1, 1 + 1)
    assert len(progress.finished) == 1
    progress.close()


def test_a_worker_reports_at_most_once_a_period() -> None:
    sent: list[tuple[int, int, int]] = []
    report = Throttled(sent.append, every=3600)
    for _ in range(5):
        report(state_with(CONVERGED, ACTIVE))
    assert sent == [(1, 1, 0)]
    Throttled(sent.append, every=0)(state_with(STUCK))
    assert sent == [(1, 1, 0), (1, 0, 1)]
