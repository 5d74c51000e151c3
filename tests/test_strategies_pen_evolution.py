"""The black-box reconstruction: evolution strategies on pen strokes, queries counted, each
run its own, and a real model's class reached without gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.engines.options import EngineOptions
from identikit.strategies import Budget, Converged, Stuck, advance, initial_state, make_strategy
from identikit.strategies.stopping import StoppingRule
from tests.helpers import softmax_model

EAGER = EngineOptions(backend="eager", chunk_size=64)


def test_pen_evolution_is_black_box_and_counts_its_queries() -> None:
    classifier = Classifier(softmax_model(), engine=EAGER)
    strategy = make_strategy("pen-evolution", samples=3, views=2, noise=0.05)
    assert not strategy.white_box
    assert strategy.queries_per_step == 2 * 3 * 2 + 1
    rules: list[StoppingRule] = [Converged(0.999999), Stuck(10**6), Budget(10**6)]
    before = classifier.queries
    state = initial_state(classifier, [1, 6], [3, 4])
    advance(state, strategy, classifier, rules, max_iterations=3)
    assert classifier.queries - before == int(state.queries.sum()) == 2 * (1 + 3 * 13)
    alone = initial_state(classifier, [6], [4])
    advance(alone, strategy, classifier, rules, max_iterations=3)
    torch.testing.assert_close(alone.images[0], state.images[1], rtol=0, atol=1e-5)
    with pytest.raises(IdentikitError, match="--option canvas"):
        make_strategy("pen-evolution", canvas="pixels")


def test_pen_evolution_makes_a_real_mnist_model_sure(mnist_softmax: Path) -> None:
    # Without gradients: strokes the MNIST softmax model calls 3 with 99% confidence.
    classifier = load_classifier(mnist_softmax, engine=EAGER)
    state = initial_state(classifier, [3], [5])
    strategy = make_strategy("pen-evolution")
    rules: list[StoppingRule] = [Converged(0.99), Stuck(10**6), Budget(200 * 41 + 1)]
    advance(state, strategy, classifier, rules)
    assert state.confidences.min() >= 0.99
