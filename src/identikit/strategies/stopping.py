"""Stopping rules as small objects: when a run is done, and what its status then is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

ACTIVE, CONVERGED, STUCK, BUDGET = 0, 1, 2, 3
STATUS_NAMES = ("active", "converged", "stuck", "budget")


class StoppingRule(Protocol):
    """Decides which runs stop now; runs it stops get the rule's ``status``."""

    @property
    def status(self) -> int:
        """The status given to the runs this rule stops."""
        ...

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        """Boolean mask of runs to stop, given their target log-probabilities, the iterations
        since each last improved, their queries so far, and the queries one step costs."""
        ...


@dataclass(frozen=True)
class Converged:
    """The model gives the target class probability >= ``target``."""

    target: float = 0.99
    status: int = CONVERGED

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        return scores >= math.log(self.target)


# Queries without gain before a run is stuck: 50 iterations of random-masks' 500 candidates,
# the original method's patience (with bf16 or int8 re-scoring, 508 a step, still 50).
PATIENCE = 25_000


@dataclass(frozen=True)
class Stuck:
    """No gain for ``patience`` model queries in a row: a local optimum.

    Counted in queries, not iterations, so that it means the same for every strategy: an
    iteration of square search is one query, of random-masks 500. A strategy's step cost is
    fixed for a search, so ``stale`` iterations of ``next_cost`` queries are
    ``stale * next_cost`` queries without gain; a run is stuck after the first whole
    iteration that reaches ``patience``, i.e. after ceil(patience / cost) stale iterations.
    """

    patience: int = PATIENCE
    status: int = STUCK

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        return stale * next_cost >= self.patience


@dataclass(frozen=True)
class Budget:
    """One more step would spend more than ``max_queries`` model queries."""

    max_queries: int = 100_000
    status: int = BUDGET

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        return queries + next_cost > self.max_queries
