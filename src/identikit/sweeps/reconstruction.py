"""The data-free reconstruction as a sweep: the ``reconstruct`` strategy's recipe and budget.

``identikit reconstruct`` is a search with the recipe that came out best in the measurements
of issue 17 (see README, "What the network remembers"), run for a fixed number of steps, held
to reading no data (:mod:`identikit.base.data_free`). Its folder is an ordinary sweep folder:
``identikit judge`` and ``identikit report`` read it, and the same command resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identikit.strategies.registry import StrategySpec
from identikit.sweeps.experiment import SweepConfig

RECONSTRUCT = "reconstruct"
# Adam steps of a run: each is the strategy's views plus the image itself in queries.
STEPS = 300
# The confidence on the model itself at which a run is done. A run goes on drawing while the
# model is less sure than this, so it stops with an image the model is sure of under every
# view, not at the first image that passes 0.99.
TARGET = 0.9999


def reconstruction_config(
    *,
    digits: tuple[int, ...] = tuple(range(10)),
    runs: int = 10,
    seed: int = 0,
    steps: int = STEPS,
    target: float = TARGET,
    settings: Mapping[str, Any] | None = None,
) -> SweepConfig:
    """The sweep of a reconstruction: ``steps`` steps of the ``reconstruct`` strategy with
    ``settings`` (its defaults otherwise), every run to ``target`` or to the end of its
    steps; never stopped as stuck (its steps are its budget)."""
    spec = StrategySpec(RECONSTRUCT, dict(settings or {}))
    # One query more: the start image is scored before the first step.
    budget = steps * spec.make().queries_per_step + 1
    return SweepConfig(
        digits=digits,
        runs=runs,
        strategy=RECONSTRUCT,
        strategy_settings=dict(settings or {}),
        seed=seed,
        target=target,
        patience=budget,
        max_queries=budget,
    )
