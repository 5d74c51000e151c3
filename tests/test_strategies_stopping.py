"""Stopping rules: patience counts queries, whatever a step costs."""

from __future__ import annotations

import pytest
import torch

from identikit.strategies import (
    Budget,
    Converged,
    Stuck,
)
from identikit.strategies.base import SearchState, apply_rules
from identikit.strategies.stopping import ACTIVE, STUCK


def crafted_state(stale: list[int]) -> SearchState:
    n = len(stale)
    return SearchState(
        targets=torch.zeros(n, dtype=torch.long),
        seeds=list(range(n)),
        images=torch.zeros(n, 1, 28, 28),
        scores=torch.full((n,), -5.0),
        status=torch.full((n,), ACTIVE, dtype=torch.int8),
        iterations=torch.full((n,), 100, dtype=torch.long),
        queries=torch.full((n,), 1000, dtype=torch.long),
        stale=torch.tensor(stale, dtype=torch.long),
    )


@pytest.mark.parametrize("cost", [500, 508])  # random-masks, and with bf16/int8 re-scoring
def test_default_patience_stops_random_masks_after_50_stale_iterations(cost: int) -> None:
    stale = list(range(0, 60))
    state = crafted_state(stale)
    apply_rules(state, [Converged(0.99), Stuck(), Budget(10**9)], cost)
    assert (state.status == STUCK).tolist() == [s >= 50 for s in stale]


def test_default_patience_lets_a_one_query_step_try_25000_times() -> None:
    state = crafted_state([50, 200, 24_999, 25_000])
    apply_rules(state, [Converged(0.99), Stuck(), Budget(10**9)], 1)
    assert (state.status == STUCK).tolist() == [False, False, False, True]
