"""The data-free reconstruction strategy: robust gradient ascent on pen strokes or sigmoid
pixels; each run its own, its queries counted, and a real model's classes reached."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.engines.options import EngineOptions
from identikit.models.info import ModelInfo
from identikit.strategies import Budget, Converged, Stuck, advance, initial_state, make_strategy
from identikit.strategies.stopping import StoppingRule
from identikit.sweeps.reconstruction import STEPS
from tests.helpers import softmax_model

EAGER = EngineOptions(backend="eager", chunk_size=64)


@pytest.mark.parametrize(
    ("option", "value"),
    [("canvas", "crayon"), ("views", 0), ("pen", 0.0), ("strokes", 40), ("lr", -1.0)],
)
def test_bad_settings_are_one_line_errors(option: str, value: object) -> None:
    with pytest.raises(IdentikitError, match=f"--option {option}") as error:
        make_strategy("reconstruct", **{option: value})
    assert "\n" not in str(error.value)


def test_a_canvas_too_small_to_draw_on_is_refused() -> None:
    with pytest.raises(IdentikitError, match="too small to draw on"):
        make_strategy("reconstruct").for_shape(ImageShape(1, 3, 3))


@pytest.mark.parametrize("canvas", ["strokes", "pixels"])
def test_each_run_is_its_own_and_every_query_is_counted(canvas: str) -> None:
    classifier = Classifier(softmax_model(), engine=EAGER)
    strategy = make_strategy("reconstruct", canvas=canvas, views=4, noise=0.05)
    assert strategy.queries_per_step == 5
    rules: list[StoppingRule] = [Converged(0.999999), Stuck(10**6), Budget(10**6)]
    before = classifier.queries
    together = initial_state(classifier, [2, 5, 5], [7, 8, 9])
    advance(together, strategy, classifier, rules, max_iterations=3)
    assert classifier.queries - before == int(together.queries.sum()) == 3 * (1 + 3 * 5)
    images = together.images
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    for row, (target, seed) in enumerate([(2, 7), (5, 8), (5, 9)]):
        alone = initial_state(classifier, [target], [seed])
        advance(alone, strategy, classifier, rules, max_iterations=3)
        # PyTorch's sums over a batch of another size may round differently in the last bits.
        torch.testing.assert_close(alone.images[0], together.images[row], rtol=0, atol=1e-5)
        assert alone.history[0] == pytest.approx(together.history[row], abs=1e-6)
    # Two seeds of one class draw on two different canvases.
    assert not torch.equal(together.memory["p"][1], together.memory["p"][2])


def test_colour_images_of_another_size_are_drawn_in_every_channel() -> None:
    shape = ImageShape(3, 20, 24)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(shape.size, 4)).eval()
    classifier = Classifier(model, ModelInfo(input_shape=shape), engine=EAGER)
    state = initial_state(classifier, [0, 3], [1, 2])
    rules: list[StoppingRule] = [Converged(0.999999), Stuck(10**6), Budget(10**6)]
    advance(state, make_strategy("reconstruct", views=2), classifier, rules, max_iterations=2)
    assert state.images.shape == (2, 3, 20, 24)
    assert torch.equal(state.images[:, 0], state.images[:, 1])


def test_a_real_mnist_model_is_made_sure_of_its_classes(mnist_softmax: Path) -> None:
    # The softmax model trained on real MNIST: pen strokes it calls 0 and 7 with 99%
    # confidence, within the reconstruction's steps.
    classifier = load_classifier(mnist_softmax, engine=EAGER)
    state = initial_state(classifier, [0, 7], [1, 2])
    budget = Budget(STEPS["reconstruct"] * 17 + 1)
    rules: list[StoppingRule] = [Converged(0.99), Stuck(10**6), budget]
    polished = make_strategy("reconstruct", polish_after=STEPS["reconstruct"] * 5 // 6)
    advance(state, polished, classifier, rules)
    assert state.confidences.min() >= 0.99


def test_polishing_runs_see_the_image_itself() -> None:
    # After polish_after steps every view is the image: the mean over views is its own score.
    classifier = Classifier(softmax_model(), engine=EAGER)
    strategy = make_strategy("reconstruct", views=3, noise=0.2, polish_after=2)
    state = initial_state(classifier, [4], [1])
    rules: list[StoppingRule] = [Converged(0.999999), Stuck(10**6), Budget(10**6)]
    advance(state, strategy, classifier, rules, max_iterations=2)
    memory = {key: value.clone() for key, value in state.memory.items()}
    generators = [torch.Generator().manual_seed(0)]
    image = strategy.draw(memory["p"], ImageShape(1, 28, 28))
    assert strategy._strength(memory).tolist() == [0.0]
    views = strategy._views(image, generators, strategy._strength(memory))
    assert torch.allclose(views, image.expand(3, -1, -1, -1), atol=1e-6)
    memory["t"] = torch.tensor([1])
    shaken = strategy._views(image, generators, strategy._strength(memory))
    assert not torch.allclose(shaken, image.expand(3, -1, -1, -1), atol=1e-3)
