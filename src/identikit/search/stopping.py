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
        since each last improved, their queries so far, and the cost of one more step."""
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


@dataclass(frozen=True)
class Stuck:
    """No gain for ``patience`` iterations in a row: a local optimum."""

    patience: int = 50
    status: int = STUCK

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        return stale >= self.patience


@dataclass(frozen=True)
class Budget:
    """One more step would spend more than ``max_queries`` model queries."""

    max_queries: int = 100_000
    status: int = BUDGET

    def __call__(
        self, scores: torch.Tensor, stale: torch.Tensor, queries: torch.Tensor, next_cost: int
    ) -> torch.Tensor:
        return queries + next_cost > self.max_queries
