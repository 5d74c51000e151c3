"""The search loop on toy models: convergence, query accounting, budgets, each run's own random
numbers, hooks, start images, and groups that stay within memory for models of 100,000
classes."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.engines.choices import PROCESS_THREADS
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.strategies import (
    CONVERGED,
    STATUS_NAMES,
    Budget,
    Converged,
    Stuck,
    advance,
    base,
    initial_state,
    make_strategy,
)
from identikit.strategies.base import (
    GROUP_BYTES,
    GROUP_IMAGES,
    START_IMAGES,
    RunHooks,
    Scratch,
    SearchState,
    derive_seed,
    group_runs,
    run_generator,
    start_images,
    uniform,
)
from identikit.strategies.stopping import StoppingRule
from tests.helpers import Constant, export_onnx, toy_linear


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


def test_hooks_hear_every_group_and_stop_a_run() -> None:
    classifier = Classifier(toy_linear())
    strategy = make_strategy("random-masks", candidates=30)
    state = initial_state(classifier, [0, 1, 2], [1, 2, 3])
    heard: list[int] = []
    asked = iter(range(10**6))
    hooks = RunHooks(
        on_commit=lambda s: heard.append(int(s.iterations.sum())),
        should_stop=lambda: next(asked) >= 2,
    ).then(lambda s: heard.append(-1))
    advance(state, strategy, classifier, [Budget(10_000)], hooks=hooks)
    # Asked before each group: two groups ran, each heard by both callbacks in order.
    assert heard == [3, -1, 6, -1]
    assert state.iterations.tolist() == [2, 2, 2]
    assert (state.status == 0).all()  # paused, not stopped by a rule
    # Without hooks the same runs go on from where they paused to the end.
    advance(state, strategy, classifier, [Converged(0.99), Budget(10_000)])
    assert not (state.status == 0).any()


def test_start_images_take_the_shape_given() -> None:
    shape = ImageShape(3, 5, 7)
    for kind in START_IMAGES:
        assert start_images(kind, [1, 2], torch.device("cpu"), shape).shape == (2, 3, 5, 7)
    noise = start_images("noise", [1, 2], torch.device("cpu"), ImageShape(1, 28, 28))
    assert noise.shape == (2, 1, 28, 28) and not torch.equal(noise[0], noise[1])


MANY_CLASSES = 100_000


@pytest.mark.usefixtures("quick_measurements", "torch_threads")
def test_group_sizes_shrink_with_the_number_of_classes() -> None:
    # 10-class models of 28 x 28 images keep the groups they always had (resumption needs them)
    for cost in (1, 7, 30, 100, 108, 500, 508, 16_384, 50_000):
        assert group_runs(cost, 10) == max(1, GROUP_IMAGES // cost)
    # a 100,000-class model: candidates and outputs of one group stay within the budget
    for cost in (1, 50, 100):
        runs = group_runs(cost, MANY_CLASSES)
        assert runs >= 1 and runs * cost * 4 * (784 + 2 * MANY_CLASSES) <= GROUP_BYTES
    assert GROUP_BYTES <= 256 * 2**20
    assert group_runs(50, MANY_CLASSES) == 3
    assert group_runs(2_000, MANY_CLASSES) == 1  # at least one run, while its step fits the limit


def test_a_gpu_takes_a_whole_iteration_in_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU with the memory for it, the 1,000 runs of a 10 x 100 sweep of the original
    method step as one group; a smaller card holds its groups to a share of its memory; a CPU
    (or a 'cuda' device where there is no GPU) keeps its groups as they were."""
    cuda, per_image = torch.device("cuda"), 4 * (784 + 2 * 10)
    for memory, expected in (
        (None, GROUP_IMAGES // 500),
        (141 << 30, base.GPU_GROUP_IMAGES // 500),
        (8 << 30, (8 << 30) // base.GPU_GROUP_SHARE // per_image // 500),
    ):
        monkeypatch.setattr(base, "gpu_memory", lambda _device, m=memory: m)
        assert group_runs(500, 10, 784, cuda) == expected
        assert group_runs(500, 10, 784, torch.device("cpu")) == GROUP_IMAGES // 500
    assert 500 * group_runs(500, 10, 784, cuda) * per_image <= (8 << 30) // base.GPU_GROUP_SHARE
    assert base.GPU_GROUP_IMAGES // 500 >= 1000  # the 10 x 100 sweep's iteration, whole


def test_one_step_too_large_for_the_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups shrink with the classes, down to one run; a run whose own step is too large
    (many candidates of a model of many classes) is refused before it is allocated."""
    with pytest.raises(IdentikitError, match="IDENTIKIT_LIMIT_STEP_BYTES"):
        group_runs(100_000, 100_000)
    monkeypatch.setenv("IDENTIKIT_LIMIT_STEP_BYTES", str(2**40))
    assert group_runs(100_000, 100_000) == 1


@pytest.fixture(scope="module")
def many_classes() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, MANY_CLASSES)).eval()


def search_once(classifier: Classifier, runs: int) -> tuple[SearchState, list[int]]:
    """One iteration of ``runs`` runs at 50 candidates each; the images each group scored."""
    strategy = make_strategy("random-masks", candidates=50)
    targets = [MANY_CLASSES - 1 - r for r in range(runs)]
    state = initial_state(classifier, targets, list(range(runs)))
    scored: list[int] = []
    counted = [classifier.queries]

    def commit(_: SearchState) -> None:
        scored.append(classifier.queries - counted[0])
        counted[0] = classifier.queries

    hooks = RunHooks(on_commit=commit)
    advance(state, strategy, classifier, [Budget(10_000)], hooks=hooks, max_iterations=1)
    return state, scored


@pytest.mark.usefixtures("quick_measurements", "torch_threads")
def test_a_search_of_a_100000_class_model_scores_in_bounded_groups(many_classes: nn.Module) -> None:
    classifier = Classifier(many_classes)
    assert classifier.num_classes == MANY_CLASSES
    state, scored = search_once(classifier, runs=4)
    assert scored == [3 * 50, 50]  # three runs fit a group's memory, the fourth makes its own
    assert (state.iterations == 1).all() and (state.queries == 51).all()
    assert torch.isfinite(state.scores).all()


@pytest.mark.usefixtures("quick_measurements", "torch_threads")
def test_a_100000_class_onnx_model_searches(many_classes: nn.Module, tmp_path: Path) -> None:
    path = export_onnx(many_classes, tmp_path / "many.onnx")
    classifier = load_classifier(
        path, device="cpu", engine=EngineOptions(cache_dir=tmp_path / "cache")
    )
    assert classifier.num_classes == MANY_CLASSES
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager = torch.log_softmax(many_classes(images), dim=1)
    assert (classifier.log_probabilities(images) - eager).abs().max() <= 1e-4
    state, scored = search_once(classifier, runs=4)
    assert scored == [3 * 50, 50] and (state.iterations == 1).all()
    assert torch.isfinite(state.scores).all()


def test_scratch_lends_one_block_to_every_group() -> None:
    scratch = Scratch()
    first = scratch.take((2, 3, 4), torch.device("cpu"))
    again = scratch.take((2, 3, 4), torch.device("cpu"))
    smaller = scratch.take((5,), torch.device("cpu"))
    assert first.data_ptr() == again.data_ptr() == smaller.data_ptr()
    larger = scratch.take((4, 3, 4), torch.device("cpu"))
    assert larger.shape == (4, 3, 4) and larger.is_contiguous()
    assert scratch.take((1, 2), torch.device("cpu")).data_ptr() == larger.data_ptr()


@pytest.mark.skipif(PROCESS_THREADS < 2, reason="lanes need two threads")
@pytest.mark.parametrize(
    ("name", "precision"),
    [("random-masks", "fp32"), ("random-masks", "int8"), ("square", "fp32"), ("strokes", "int8")],
)
def test_runs_stepped_in_lanes_compute_what_each_computes_alone(
    name: str, precision: str, tmp_path: Path
) -> None:
    # A colour model on ONNX Runtime: its groups are split among one-core lanes side by side,
    # while a search of one run steps it on the engine itself. Every run must end as it does
    # alone, and the meter must count every image either way.
    shape = ImageShape(3, 12, 12)
    torch.manual_seed(0)
    model = build_model("colour-cnn", 10, shape).eval()
    engine = EngineOptions(backend="onnx", precision=precision, chunk_size=64, cache_dir=tmp_path)
    classifier = Classifier(model, ModelInfo(input_shape=shape), engine=engine)
    assert len(classifier.lanes()) == PROCESS_THREADS
    strategy = make_strategy(name)
    rules: list[StoppingRule] = [Converged(0.999), Stuck(100), Budget(10**6)]
    targets, seeds = [0, 3, 3, 7, 9], [11, 12, 13, 14, 15]
    before = classifier.queries
    together = initial_state(classifier, targets, seeds)
    advance(together, strategy, classifier, rules, max_iterations=4)
    assert classifier.queries - before == int(together.queries.sum())
    for row, (target, seed) in enumerate(zip(targets, seeds, strict=True)):
        alone = initial_state(classifier, [target], [seed])
        advance(alone, strategy, classifier, rules, max_iterations=4)
        assert torch.equal(alone.images[0], together.images[row])
        assert torch.equal(alone.scores[0], together.scores[row])
        assert alone.history[0] == together.history[row]
        assert int(alone.queries[0]) == int(together.queries[row])


def test_pytorch_engines_and_white_box_strategies_keep_to_one_lane() -> None:
    # PyTorch's engines have no one-core copy: a search steps each group on the engine itself.
    classifier = Classifier(toy_linear(), engine=EngineOptions(backend="eager"))
    assert classifier.lanes() == []
    _, state = search(toy_linear(), [1, 2, 3], [1, 2, 3])
    assert all(len(history) > 1 for history in state.history)
