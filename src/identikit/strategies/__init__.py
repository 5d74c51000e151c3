"""Search strategies for identikits, and the loop that runs them in batches."""

from __future__ import annotations

from identikit.strategies import (  # noqa: F401  (importing registers the strategies)
    evolution,
    gradient,
    inversion,
    inversion_black_box,
    pen_evolution,
    random_masks,
    reconstruction,
    square,
    strokes,
)
from identikit.strategies.base import RunHooks, SearchState, Strategy, advance, initial_state
from identikit.strategies.priors import PriorInputs, PriorNeeds, Subspace
from identikit.strategies.registry import STRATEGIES, StrategySpec, make_strategy
from identikit.strategies.stopping import (
    BUDGET,
    CONVERGED,
    STATUS_NAMES,
    STUCK,
    Budget,
    Converged,
    Stuck,
)

__all__ = [
    "BUDGET",
    "CONVERGED",
    "STATUS_NAMES",
    "STRATEGIES",
    "STUCK",
    "Budget",
    "Converged",
    "PriorInputs",
    "PriorNeeds",
    "RunHooks",
    "SearchState",
    "Strategy",
    "StrategySpec",
    "Stuck",
    "Subspace",
    "advance",
    "initial_state",
    "make_strategy",
]
