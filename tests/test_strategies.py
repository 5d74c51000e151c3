"""Every registered strategy, one table: the contract each must keep (convergence, determinism,
exact query accounting), and what is particular to some."""

from __future__ import annotations

import itertools

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.strategies import (
    STATUS_NAMES,
    STRATEGIES,
    Budget,
    Converged,
    SearchState,
    Strategy,
    Stuck,
    advance,
    initial_state,
    make_strategy,
)
from identikit.strategies.pen_strokes import PenStrokes
from identikit.strategies.stopping import StoppingRule
from identikit.sweeps.experiment import SweepConfig
from tests.helpers import Constant, softmax_model, toy_linear

ALL = sorted(STRATEGIES)


# Small settings so that each test takes well under a second.
FAST = {
    "random-masks": {"candidates": 40},
    "evolution": {"candidates": 8},
    "square": {},
    "gradient": {},
    "strokes": {"candidates": 8},
    # The reconstructions' penalties hold a toy model's confidence back until they polish.
    "reconstruct": {"views": 2, "polish_after": 20},
    "pen-evolution": {"samples": 4, "views": 1, "polish_after": 20},
    # Batches of one run: each run then depends on its own seed alone, as the table asks.
    "invert": {"steps": 20, "batch": 1},
    "invert-black-box": {"steps": 20, "samples": 4},
}


def stuck(name: str, iterations: int, **extra: object) -> Stuck:
    """Stuck after ``iterations`` stale iterations of the strategy (patience counts queries)."""
    return Stuck(iterations * make_strategy(name, **{**FAST[name], **extra}).queries_per_step)


def run(
    name: str,
    model: torch.nn.Module,
    targets: list[int],
    seeds: list[int],
    rules: list[StoppingRule],
    **extra: object,
) -> tuple[Classifier, Strategy, SearchState]:
    classifier = Classifier(model)
    strategy = make_strategy(name, **{**FAST[name], **extra})
    state = initial_state(classifier, targets, seeds)
    advance(state, strategy, classifier, rules)
    return classifier, strategy, state


def test_every_strategy_has_fast_settings() -> None:
    assert set(FAST) == set(STRATEGIES)


# Strategies that draw pen strokes only: no stroke drawing makes the random toy_linear model
# sure (its classes want scattered pixels), so they are given a linear model whose classes are
# stroke drawings.
PEN_ONLY = ("reconstruct", "pen-evolution")


def stroke_linear(scale: float = 8.0) -> torch.nn.Module:
    """A linear model whose class k is a template of two random pen strokes (seeded)."""
    pen = PenStrokes(strokes=2)
    generators = [torch.Generator().manual_seed(100 + k) for k in range(10)]
    templates = pen.render(pen.start(generators, 0.6, torch.device("cpu")), (1, 28, 28))
    templates = templates.flatten(1)
    layer = torch.nn.Linear(784, 10)
    with torch.no_grad():
        centred = templates - templates.mean(dim=0)
        layer.weight.copy_(centred * scale / templates.norm(dim=1, keepdim=True))
        layer.bias.zero_()
    return torch.nn.Sequential(torch.nn.Flatten(), layer).eval()


@pytest.mark.parametrize("name", ALL)
def test_converges_on_a_toy_model_with_monotone_best(name: str) -> None:
    if STRATEGIES[name].draws_to_end:  # type: ignore[attr-defined]
        pytest.skip("keeps its last image to its planned end: see test_strategies_inversion")
    _, _, state = run(
        name,
        stroke_linear() if name in PEN_ONLY else toy_linear(),
        list(range(10)),
        list(range(10)),
        [Converged(0.99), stuck(name, 200), Budget(20_000)],
    )
    assert [STATUS_NAMES[s] for s in state.status.tolist()] == ["converged"] * 10
    for history in state.history:
        assert all(b >= a for a, b in itertools.pairwise(history))


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result(name: str) -> None:
    rules: list[StoppingRule] = [Converged(0.999), stuck(name, 50), Budget(3000)]
    _, _, a = run(name, toy_linear(scale=0.01), [2, 5], [7, 8], rules)
    _, _, b = run(name, toy_linear(scale=0.01), [2, 5], [7, 8], rules)
    assert torch.equal(a.images, b.images)
    assert a.history == b.history


@pytest.mark.parametrize("name", ALL)
def test_exact_query_accounting_and_budget(name: str) -> None:
    classifier, strategy, state = run(
        name, Constant(), [0, 1, 2], [1, 2, 3], [Converged(0.99), Stuck(10**6), Budget(333)]
    )
    cost = strategy.queries_per_step
    assert (state.queries == state.iterations * cost + 1).all()
    assert int(state.queries.sum()) == classifier.queries
    assert (state.queries <= 333).all() and (state.queries + cost > 333).all()
    assert {STATUS_NAMES[s] for s in state.status.tolist()} == {"budget"}


def test_gradient_priors_and_objectives() -> None:
    for settings in (
        {"objective": "margin"},
        {"priors": "tv,l2,blur"},
        {"priors": "jitter", "jitter_pixels": 2},
    ):
        # Priors fight the toy model's pixel-wise random weights; stronger weights leave room.
        _, _, state = run(
            "gradient",
            toy_linear(scale=0.3),
            [3, 4],
            [0, 1],
            [Converged(0.99), stuck("gradient", 100, **settings), Budget(2000)],
            **settings,
        )
        assert (state.confidences >= 0.99).all(), settings
    assert make_strategy("gradient", priors="jitter").queries_per_step == 2
    with pytest.raises(IdentikitError, match="unknown prior 'sharpen'"):
        make_strategy("gradient", priors="tv,sharpen")


def test_square_schedule_shrinks() -> None:
    square = make_strategy("square", side=14, schedule_queries=1000)
    sides = [square.side_at(i) for i in (0, 5, 100, 500, 999)]
    assert sides[0] == 14 and sides == sorted(sides, reverse=True) and sides[-1] >= 1


def test_square_with_default_patience_is_not_stuck_early() -> None:
    # Square search needs a few hundred queries here, with stretches of more than 50
    # iterations (50 queries) without gain: counted in iterations, 4 of these 9 runs were
    # "stuck" after 194 to 424 queries.
    config = SweepConfig(strategy="square", max_queries=5000)
    classifier = Classifier(softmax_model())
    state = initial_state(classifier, [0, 0, 0, 1, 1, 1, 2, 2, 2], list(range(9)))
    advance(state, make_strategy("square"), classifier, config.rules())
    assert [STATUS_NAMES[s] for s in state.status.tolist()] == ["converged"] * 9
    assert int(state.queries.max()) < 2000


def test_progress_on_the_priors_is_not_stalling() -> None:
    # The constant model's probability never moves, but the TV prior smooths the noise start
    # for many steps: the run only counts as stuck once that progress stops too.
    classifier = Classifier(Constant())
    state = initial_state(classifier, [0], [5], start="noise")
    advance(
        state,
        make_strategy("gradient", priors="tv", prior_decay=1.0),
        classifier,
        [Converged(0.99), Stuck(5), Budget(10_000)],
    )
    assert STATUS_NAMES[int(state.status[0])] == "stuck"
    assert int(state.iterations[0]) > 5


# --- any image shape: colour and grey, small and large ------------------------------------------

SHAPES = {
    "colour 3x32x32": ("colour-cnn", ImageShape(3, 32, 32)),
    "grey 1x8x8": ("cnn", ImageShape(1, 8, 8)),
}
# Every strategy, and gradient ascent with each prior that works on any image (colour ones on
# colour images only).
VARIANTS: list[tuple[str, dict[str, object]]] = [(name, {}) for name in ALL] + [
    ("gradient", {"priors": "fourier"}),
    ("gradient", {"priors": "transforms"}),
    ("gradient", {"priors": "tv,l2,blur,jitter,fourier,transforms"}),
]
COLOUR_VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("gradient", {"priors": "colour"}),
    ("gradient", {"priors": "colour,fourier,transforms,tv,blur"}),
]


def shaped_classifier(architecture: str, shape: ImageShape) -> Classifier:
    """A real model of the architecture for images of ``shape``, with random weights."""
    torch.manual_seed(0)
    model = build_model(architecture, 10, shape).eval()
    return Classifier(model, ModelInfo(sha256="random", input_shape=shape))


def shaped_run(
    classifier: Classifier,
    name: str,
    settings: dict[str, object],
    targets: list[int],
    seeds: list[int],
) -> SearchState:
    strategy = make_strategy(name, **{**FAST[name], **settings})
    state = initial_state(classifier, targets, seeds, start="gray")
    advance(state, strategy, classifier, [Budget(6 * strategy.queries_per_step + 1)])
    return state


def check_shaped_run(classifier: Classifier, name: str, settings: dict[str, object]) -> None:
    # oneDNN picks its convolution kernels by batch size on some CPUs (AMD EPYC here), and a
    # random model's gradients are small enough that Adam's first, sign-like steps turn that
    # rounding into different images; PyTorch's own kernels compute each image of a batch
    # alike, so the comparison below tests the strategy, not the CPU's choice of kernels.
    # (Set directly: mkldnn.flags() also warns that Intel GPUs' TF32 is not built in.)
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        _check_shaped_run(classifier, name, settings)
    finally:
        torch.backends.mkldnn.enabled = enabled


def _check_shaped_run(classifier: Classifier, name: str, settings: dict[str, object]) -> None:
    shape = classifier.info.input_shape
    state = shaped_run(classifier, name, settings, [3, 7, 3], [11, 12, 13])
    assert state.images.shape == shape.batch(3)
    assert float(state.images.min()) >= 0.0 and float(state.images.max()) <= 1.0
    assert (state.iterations == 6).all()
    for history in state.history:  # a run that keeps its last image need not be monotone
        monotone = all(b >= a for a, b in itertools.pairwise(history))
        assert monotone or STRATEGIES[name].draws_to_end  # type: ignore[attr-defined]
    # A run depends on its own seed alone, not on the runs that share its batch (up to the
    # rounding of a model that computes a batch of 3 otherwise than a batch of 1).
    alone = shaped_run(classifier, name, settings, [7], [12])
    assert torch.allclose(alone.images[0], state.images[1], atol=1e-3)
    assert alone.history[0] == pytest.approx(state.history[1], rel=1e-4)


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize(("name", "settings"), VARIANTS, ids=lambda v: str(v))
def test_every_strategy_searches_images_of_any_shape(
    shape_name: str, name: str, settings: dict[str, object]
) -> None:
    check_shaped_run(shaped_classifier(*SHAPES[shape_name]), name, settings)


@pytest.mark.parametrize(("name", "settings"), COLOUR_VARIANTS, ids=lambda v: str(v))
def test_colour_priors_search_colour_images(name: str, settings: dict[str, object]) -> None:
    check_shaped_run(shaped_classifier(*SHAPES["colour 3x32x32"]), name, settings)


def test_a_strategy_refuses_a_shape_it_cannot_search_before_any_query() -> None:
    grey = shaped_classifier(*SHAPES["grey 1x8x8"])
    strategy = make_strategy("gradient", priors="colour,tv")
    with pytest.raises(IdentikitError) as error:
        strategy.check_shape(grey.info.input_shape)
    assert str(error.value) == (
        "gradient: the colour prior needs images of 3 channels (RGB); the model takes 1x8x8"
    )
    manifold = make_strategy("gradient", priors="manifold", manifold_components=65)
    with pytest.raises(IdentikitError, match=r"manifold_components must be at most 64 \("):
        manifold.check_shape(grey.info.input_shape)
    make_strategy("gradient", priors="manifold", manifold_components=64).check_shape(
        grey.info.input_shape
    )
    # Components beyond MNIST's 784 are a setting like any other on larger images.
    many = make_strategy("gradient", priors="manifold", manifold_components=3072)
    many.check_shape(ImageShape(3, 32, 32))
    for name in ALL:
        make_strategy(name).check_shape(ImageShape(3, 17, 5))  # every other shape will do
    # advance asks too, before its strategy's first query.
    state = initial_state(grey, [0], [1])
    with pytest.raises(IdentikitError, match="colour prior needs"):
        advance(state, strategy, grey, [Budget(10)])
    assert grey.queries == 1  # the start image only
