"""The search loop and random-mask strategy on toy models: the contract of issue 3."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from typing import Any

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.strategies import (
    CONVERGED,
    STATUS_NAMES,
    Budget,
    Converged,
    Stuck,
    advance,
    initial_state,
    make_strategy,
)
from identikit.strategies.base import Group, SearchState, derive_seed, run_generator, uniform
from identikit.strategies.stopping import StoppingRule
from tests.helpers import Constant, toy_linear


def search(
    model: nn.Module,
    targets: list[int],
    seeds: list[int],
    *,
    candidates: int = 50,
    rules: list[StoppingRule] | None = None,
    **settings: float,
) -> tuple[Classifier, SearchState]:
    classifier = Classifier(model)
    strategy = make_strategy("random-masks", candidates=candidates, **settings)
    state = initial_state(classifier, targets, seeds)
    advance(
        state,
        strategy,
        classifier,
        rules or [Converged(0.99), Stuck(20 * candidates), Budget(20_000)],
    )
    return classifier, state


def test_toy_linear_model_converges_and_scores_never_fall() -> None:
    _, state = search(toy_linear(), list(range(10)), list(range(10)))
    assert state.status.tolist() == [CONVERGED] * 10
    assert (state.confidences >= 0.99).all()
    for history in state.history:
        assert all(b >= a for a, b in itertools.pairwise(history))
        assert history[-1] >= 0.99 > history[0]


def test_query_accounting() -> None:
    classifier, state = search(toy_linear(), [1, 2, 3], [5, 6, 7], candidates=40)
    assert (state.queries == state.iterations * 40 + 1).all()
    assert int(state.queries.sum()) == classifier.queries
    assert [len(h) for h in state.history] == (state.iterations + 1).tolist()


def test_same_seed_same_images_whatever_the_batch() -> None:
    _, first = search(toy_linear(), [3, 4, 5], [11, 12, 13])
    _, again = search(toy_linear(), [3, 4, 5], [11, 12, 13])
    assert torch.equal(first.images, again.images)
    _, alone = search(toy_linear(), [4], [12])
    assert torch.equal(alone.images[0], first.images[1])
    _, other = search(toy_linear(), [4], [99])
    assert not torch.equal(other.images[0], first.images[1])


def test_unreachable_target_never_converges() -> None:
    _, stuck = search(
        Constant(), [0, 1], [1, 2], rules=[Converged(0.99), Stuck(3 * 50), Budget(10_000)]
    )
    assert [STATUS_NAMES[s] for s in stuck.status.tolist()] == ["stuck", "stuck"]
    assert stuck.iterations.tolist() == [3, 3]
    _, budget = search(Constant(), [0], [1], rules=[Converged(0.99), Stuck(100 * 50), Budget(175)])
    assert STATUS_NAMES[int(budget.status[0])] == "budget"
    assert int(budget.queries[0]) == 151  # 1 + 3 x 50; a 4th step would exceed 175


def test_budget_is_respected_by_converging_runs() -> None:
    _, state = search(
        toy_linear(scale=0.01),
        list(range(10)),
        list(range(10)),
        rules=[Converged(0.9999), Stuck(1000 * 50), Budget(1001)],
    )
    assert (state.queries <= 1001).all()
    assert {STATUS_NAMES[s] for s in state.status.tolist()} <= {"converged", "budget"}


def test_targets_outside_the_classes_are_refused() -> None:
    with pytest.raises(IdentikitError, match="outside the model's 10 classes"):
        initial_state(Classifier(toy_linear()), [10], [0])


@pytest.mark.parametrize("bad", [{"candidates": 0}, {"mask_density": 0.0}, {"mask_amplitude": 1.5}])
def test_bad_strategy_settings(bad: dict[str, float]) -> None:
    with pytest.raises(IdentikitError):
        make_strategy("random-masks", **bad)


def test_unknown_strategy() -> None:
    with pytest.raises(IdentikitError, match="unknown strategy 'magic'"):
        make_strategy("magic")


def test_masks_follow_the_documented_distribution() -> None:
    strategy = make_strategy("random-masks", candidates=2000, mask_density=0.1, mask_amplitude=0.5)
    gen = torch.Generator().manual_seed(0)
    base = torch.full((1, 1, 28, 28), 0.5)
    group = Group(
        images=base,
        scores=torch.zeros(1),
        targets=torch.zeros(1, dtype=torch.long),
        iterations=torch.zeros(1, dtype=torch.long),
        generators=[gen],
        memory={},
    )
    candidates = strategy.propose(group)
    offsets = candidates - 0.5
    changed = offsets != 0
    assert candidates.shape == (1, 2000, 1, 28, 28)
    assert abs(changed.float().mean().item() - 0.1) < 0.005
    assert offsets.abs().max().item() <= 0.5
    assert abs(offsets[changed].mean().item()) < 0.01  # symmetric around 0


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_each_run_draws_from_its_own_generator_whatever_the_threads(threads: int) -> None:
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        drawn = uniform([run_generator(seed, 4, cpu) for seed in range(5)], (300, 28), cpu)
    finally:
        torch.set_num_threads(before)
    for seed in range(5):
        assert torch.equal(drawn[seed], torch.rand(300, 28, generator=run_generator(seed, 4, cpu)))


def _draw_in_child(queue: Any) -> None:
    cpu = torch.device("cpu")
    queue.put(uniform([run_generator(seed, 1, cpu) for seed in range(4)], (10,), cpu).tolist())


@pytest.mark.skipif(sys.platform != "linux", reason="fork is a Linux start method here")
def test_a_forked_child_draws_too() -> None:
    cpu = torch.device("cpu")
    parent = uniform([run_generator(seed, 1, cpu) for seed in range(4)], (10,), cpu)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_draw_in_child, args=(queue,))
    child.start()
    child.join(60)
    if child.is_alive():  # the inherited thread pool waited for threads the child lacks
        child.kill()
        pytest.fail("the forked child hung drawing random numbers")
    assert queue.get(timeout=10) == parent.tolist()


def test_nan_model_is_a_clear_error() -> None:
    class NaNs(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 10), float("nan"))

    with pytest.raises(IdentikitError, match="NaN"):
        initial_state(Classifier(NaNs()), [0], [0])


def test_derived_seeds_differ() -> None:
    seeds = {derive_seed(0, d, r) for d in range(10) for r in range(100)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**63 for s in seeds)


def test_wrong_number_of_classes_is_a_clear_error() -> None:
    with pytest.raises(IdentikitError, match="returns 10 classes, expected 7"):
        Classifier(toy_linear(), name="m.pt", classes=7)

    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).sum(1)

    with pytest.raises(IdentikitError, match=r"shape \(N, classes\)"):
        Classifier(Flat())
