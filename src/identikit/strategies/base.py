"""The search loop shared by every strategy: many runs advanced in lock-step as one batch.

A *run* searches for one image the model finds most like one target class. All runs of a
sweep (digits x seeds) live in one :class:`SearchState`; each iteration the active runs are cut
into groups sized for memory, every group's candidates are scored in one batched call to the
:class:`~identikit.classifier.classifier.Classifier`, and each run keeps its best. Randomness
comes from a generator seeded by (run seed, iteration), so a run's result depends only on its
own seed, not on which other runs share the batch, and a resumed search needs no generator state.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from identikit.base.device import gpu_memory
from identikit.base.errors import IdentikitError
from identikit.base.limits import STEP_BYTES
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.data.datasets import MNIST_SHAPE
from identikit.strategies.priors import PRIOR_INPUT, PriorInputs, PriorNeeds
from identikit.strategies.stopping import ACTIVE, BUDGET, StoppingRule

START_IMAGES = ("blank", "gray", "noise")
# Candidate images generated at once, at most; about 50 MB of float32 pixels.
GROUP_IMAGES = 16384
# Bytes that one group's candidates and their outputs may take, at most: a model of many
# classes gets fewer candidates per group (16,384 images of a 100,000-class model would make
# 6.5 GB of outputs, and the log-softmax a copy). Models of up to 600 classes keep groups
# of GROUP_IMAGES images, so their groups, and so resumed searches, stay as they were.
GROUP_BYTES = 128 * 2**20
# On a GPU a group is larger: each costs a few waits for the device (its runs' iteration counts
# come to the host to seed their generators, its confidences to their histories), and while the
# host prepares the next group the GPU idles. GROUP_IMAGES candidates are about 11 ms of an
# H200's scoring (issue 19: 1.5 M images/s), too little to hide that; here a whole iteration of a
# 10 x 100 sweep of the original method (1,000 runs x 500 candidates) is one group ...
GPU_GROUP_IMAGES = 2**19
# ... its candidates and outputs held to this fraction of the GPU's memory (GROUP_BYTES at
# least): 1.7 GB of MNIST candidates on an H200's 140 GB, a third of that on an 8 GB card.
GPU_GROUP_SHARE = 16
# Candidates per run and step re-scored in float32 after a low-precision ranking.
RESCORED = 8


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (e.g. sweep seed, digit, run, iteration)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def run_generator(seed: int, iteration: int, device: torch.device) -> torch.Generator:
    """The random generator of one run at one iteration."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, iteration))


def uniform(
    generators: Sequence[torch.Generator],
    shape: tuple[int, ...],
    device: torch.device,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Uniform numbers in [0, 1), shape (runs, *shape): row i drawn from ``generators[i]``,
    into ``out`` where given (of that shape).

    On CPU the rows are drawn on as many threads as PyTorch computes with: a CPU generator is
    one serial Mersenne Twister, and drawing the masks of 16,000 candidates on one core took
    about 5% of a sweep's time while the other core idled. Each row still comes from its own
    generator alone, so the numbers do not depend on the threads.
    """
    if out is None:
        out = torch.empty((len(generators), *shape), device=device)
    workers = min(torch.get_num_threads(), len(generators)) if device.type == "cpu" else 1

    def draw(rows: range) -> None:
        for row in rows:
            torch.rand(shape, generator=generators[row], device=device, out=out[row])

    if workers <= 1:
        draw(range(len(generators)))
    else:
        # PyTorch releases the GIL while it draws, so the threads run in parallel.
        list(_pool(workers).map(draw, [range(w, len(generators), workers) for w in range(workers)]))
    return out


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="identikit-draw")


# A forked child has none of its parent's threads, yet a pool it inherited would wait for them
# forever: the child makes its own.
os.register_at_fork(after_in_child=_pool.cache_clear)


@dataclass
class SearchState:
    """Every run of a search, batched: row r of each tensor belongs to run r.

    ``images`` are the best images found so far and ``scores`` their target log-probabilities;
    ``stale`` counts iterations since a run last improved; ``history[r][i]`` is run r's best
    confidence after i iterations (``history[r][0]``: its start image). ``memory`` holds the
    strategy's own per-run state (e.g. a step size), one row per run, saved with the rest.
    """

    targets: torch.Tensor
    seeds: list[int]
    images: torch.Tensor
    scores: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    queries: torch.Tensor
    stale: torch.Tensor
    history: list[list[float]] = field(default_factory=list)
    memory: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def confidences(self) -> torch.Tensor:
        """Target-class probabilities of the current images."""
        return self.scores.exp()


def start_images(
    kind: str, seeds: Sequence[int], device: torch.device, shape: ImageShape
) -> torch.Tensor:
    """Start images of ``shape``: ``blank`` (all 0), ``gray`` (all 0.5) or ``noise`` (uniform,
    per run seed)."""
    n = len(seeds)
    if kind == "blank":
        return torch.zeros(shape.batch(n), device=device)
    if kind == "gray":
        return torch.full(shape.batch(n), 0.5, device=device)
    if kind == "noise":
        return torch.stack(
            [
                torch.rand(shape.dims, generator=run_generator(s, -1, device), device=device)
                for s in seeds
            ]
        )
    raise IdentikitError(f"unknown start image {kind!r}; expected one of {', '.join(START_IMAGES)}")


def target_scores(
    classifier: Classifier, images: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Target-class log-probabilities of ``images`` (one query each)."""
    return classifier.log_probabilities(images).gather(1, targets.view(-1, 1)).squeeze(1)


def check_targets(classifier: Classifier, targets: Sequence[int]) -> None:
    """Refuse target classes that the model does not have."""
    bad = sorted({t for t in targets if not 0 <= t < classifier.num_classes})
    if bad:
        raise IdentikitError(
            f"target classes {bad} are outside the model's {classifier.num_classes} classes"
        )


def initial_state(
    classifier: Classifier, targets: Sequence[int], seeds: Sequence[int], *, start: str = "blank"
) -> SearchState:
    """Runs at iteration 0: start images scored (one query each)."""
    if len(targets) != len(seeds):
        raise ValueError("one seed per target is needed")
    check_targets(classifier, targets)
    device = classifier.device
    target_tensor = torch.tensor(list(targets), dtype=torch.long, device=device)
    images = start_images(start, seeds, device, classifier.info.input_shape)
    scores = target_scores(classifier, images, target_tensor)
    n = len(targets)
    return SearchState(
        targets=target_tensor,
        seeds=list(seeds),
        images=images,
        scores=scores,
        status=torch.full((n,), ACTIVE, dtype=torch.int8, device=device),
        iterations=torch.zeros(n, dtype=torch.long, device=device),
        queries=torch.ones(n, dtype=torch.long, device=device),
        stale=torch.zeros(n, dtype=torch.long, device=device),
        history=[[c] for c in scores.exp().tolist()],
    )


class Scratch:
    """Storage for candidates that the runner lends every group of one :func:`advance`.

    A group's candidates are scored and done with before the next group's are made, so one
    block serves them all. Allocated afresh each step, the block (over glibc's 32 MiB mmap
    threshold) went back to the system when freed and was page-faulted in again on every
    step: 4 us of each 3 x 32 x 32 candidate's time, as long as drawing its mask.
    """

    def __init__(self) -> None:
        self._block = torch.empty(0)

    def take(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """An uninitialised float32 tensor of ``shape``, a view of the block (grown to fit)."""
        size = math.prod(shape)
        if self._block.numel() < size or self._block.device != device:
            self._block = torch.empty(size, device=device)
        return self._block[:size].view(shape)


@dataclass
class Group:
    """The rows of a group of runs that one call to :meth:`Strategy.step` advances.

    ``memory`` holds the strategy's per-run state for these rows; a step may replace its
    entries, and the runner writes them back.
    """

    images: torch.Tensor
    scores: torch.Tensor
    targets: torch.Tensor
    iterations: torch.Tensor
    generators: list[torch.Generator]
    memory: dict[str, torch.Tensor]
    # Set by a step whose own objective is not the target's probability (e.g. gradient ascent
    # with priors): which runs progressed on it, so that they do not count as stuck.
    progressed: torch.Tensor | None = None
    # Where the runner lends storage for the step's candidates (None: they are allocated).
    scratch: Scratch | None = None

    def candidate_storage(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Uninitialised float32 storage of ``shape`` for candidates: the runner's scratch,
        valid until the next group's step, or a new tensor."""
        if self.scratch is None:
            return torch.empty(shape, device=self.images.device)
        return self.scratch.take(shape, self.images.device)


@dataclass(frozen=True, kw_only=True)
class Strategy(ABC):
    """A search strategy: how one iteration tries to improve a group of runs.

    Subclasses are frozen dataclasses whose fields are their settings. Elitist strategies
    implement :meth:`propose`; others override :meth:`step`. Either way the runner keeps, for
    every run, the best image any step has found, so a run's best score never falls.
    """

    name: ClassVar[str] = ""
    white_box: ClassVar[bool] = False
    # A strategy that draws its runs together (a term over the step's batch, such as
    # DeepInversion's batch-norm statistics) keeps each run's last image, not its best-scoring
    # one, and stops a run only when its steps are spent: later steps refine an image the
    # model is already sure of, which a confidence target would cut short.
    draws_to_end: ClassVar[bool] = False
    # Where the method comes from (the paper its module cites), for `identikit strategies`.
    source: ClassVar[str] = ""

    @property
    @abstractmethod
    def queries_per_step(self) -> int:
        """Model queries one iteration spends on one run."""

    def settings(self) -> dict[str, Any]:
        """The strategy's settings, as recorded in results (its prior inputs are none)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata != PRIOR_INPUT
        }

    def check_shape(self, shape: ImageShape) -> None:
        """Refuse, in one line, images of a shape the strategy cannot search (e.g. a colour
        prior on a grey model); by default every shape is accepted. Callers ask before any
        query; :func:`advance` asks too."""
        del shape  # every shape will do

    def for_shape(self, shape: ImageShape) -> Strategy:
        """The strategy for images of ``shape``: settings that depend on the image (e.g. a
        square's side) filled in, after :meth:`check_shape`. Sweeps record the settings of
        this value; by default the strategy itself."""
        self.check_shape(shape)
        return self

    def needs(self) -> PriorNeeds:
        """What the strategy's priors must be given from the training data (see
        :meth:`with_inputs`); by default nothing."""
        return PriorNeeds()

    def with_inputs(self, inputs: PriorInputs) -> Strategy:
        """The strategy with what its priors need from the data; refused when it lacks some."""
        inputs.check(self.needs())
        return self

    def init_memory(self, state: SearchState) -> dict[str, torch.Tensor]:
        """The strategy's per-run state at the start of a search (one row per run)."""
        return {}

    def batch_runs(self, runs: int) -> int | None:
        """Runs per group where the strategy's groups are fixed batches, for a search of
        ``runs`` runs: :func:`advance` then steps runs ``[0, n)``, ``[n, 2n)``, ... of the
        layout together, whatever the memory or device, since a run's step depends on its
        batch-mates (see :attr:`draws_to_end`). None (the default): runs are independent and
        grouped by memory (:func:`group_runs`)."""
        del runs  # independent runs
        return None

    def grouping(self, runs: int) -> str | None:
        """How the runs of a search of ``runs`` runs were grouped, in words, for its record
        (None: independently, in groups that change nothing)."""
        size = self.batch_runs(runs)
        if size is None:
            return None
        return f"batches of {size} runs in layout order (class-major)"

    def propose(self, group: Group) -> torch.Tensor:
        """Candidates (G, K, C, H, W) in [0, 1] for the group's runs."""
        raise NotImplementedError

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        """Score the proposals; return each run's best candidate (G, C, H, W) and its score.

        Ranked at low precision (:meth:`Classifier.score` in bf16 or int8), the ``RESCORED``
        best candidates of each run are re-scored in float32 and the best of them by that score
        is returned, with its float32 score: near certainty the candidates differ by less than
        bf16 or int8 can tell, and re-scoring the top one alone would often keep none.
        """
        candidates = self.propose(group)
        groups, k = candidates.shape[:2]
        logp = classifier.score(candidates.flatten(0, 1))
        candidate_scores = (
            logp.view(groups, k, -1)
            .gather(2, group.targets.view(groups, 1, 1).expand(groups, k, 1))
            .squeeze(2)
        )
        rows = torch.arange(groups, device=candidates.device)
        if rescoring(self, classifier):
            top = candidate_scores.topk(min(RESCORED, k), dim=1).indices
            finalists = candidates[rows.view(-1, 1), top]
            exact = target_scores(
                classifier,
                finalists.flatten(0, 1),
                group.targets.repeat_interleave(top.shape[1]),
            ).view(groups, -1)
            best, which = exact.max(dim=1)
            return finalists[rows, which], best
        best, which = candidate_scores.max(dim=1)
        return candidates[rows, which], best


def rescoring(strategy: Strategy, classifier: Classifier) -> bool:
    """Whether a step re-scores its best candidates in float32 (see :meth:`Strategy.step`).

    So it does when candidates are ranked in bf16 or int8: every recorded confidence is then a
    float32 value, and a candidate is kept only when its float32 score beats the run's.
    White-box strategies score in float32 already.
    """
    return classifier.rescores and not strategy.white_box


def step_cost(strategy: Strategy, classifier: Classifier) -> int:
    """Model queries one iteration spends on one run, the float32 re-scoring included, with
    the strategy's settings for the model's images (random-masks' candidates follow them)."""
    strategy = strategy.for_shape(classifier.info.input_shape)
    if not rescoring(strategy, classifier):
        return strategy.queries_per_step
    return strategy.queries_per_step + min(RESCORED, strategy.queries_per_step)


def apply_rules(
    state: SearchState,
    rules: Sequence[StoppingRule],
    next_cost: int,
    *,
    to_end: bool = False,
) -> None:
    """Stop the active runs that a rule says are done; earlier rules take precedence. With
    ``to_end`` (a strategy that :attr:`~Strategy.draws_to_end`) only the runs whose budget is
    spent stop, each with the status of the first rule that holds then (converged first)."""
    active = state.status == ACTIVE
    if to_end:
        spent = torch.zeros_like(active)
        for rule in rules:
            if rule.status == BUDGET:
                spent |= rule(state.scores, state.stale, state.queries, next_cost)
        active &= spent
    for rule in rules:
        hit = rule(state.scores, state.stale, state.queries, next_cost) & active
        state.status[hit] = rule.status
        active &= ~hit


def group_runs(
    cost: int,
    classes: int,
    pixels: int = MNIST_SHAPE.size,
    device: torch.device | None = None,
) -> int:
    """Runs advanced together on ``device`` (None: a CPU): as many as fit, at ``cost``
    candidates each, in GROUP_IMAGES images and in GROUP_BYTES of float32 pixels and outputs
    (on a GPU, GPU_GROUP_IMAGES and a GPU_GROUP_SHARE of its memory), and at least one.

    An image's outputs count twice: the model's (N, classes) and their log-softmax. A group of
    one run is as small as a group gets, so one run's step must itself fit
    :data:`identikit.base.limits.STEP_BYTES`, checked here before anything is allocated.
    """
    per_image = 4 * (pixels + 2 * classes)
    STEP_BYTES.check(cost * per_image, f"one step of {cost:,} images of {classes:,} classes")
    most, room = GROUP_IMAGES, GROUP_BYTES
    memory = gpu_memory(device) if device is not None and device.type == "cuda" else None
    if memory is not None:
        most, room = GPU_GROUP_IMAGES, max(GROUP_BYTES, memory // GPU_GROUP_SHARE)
    return max(1, min(most, room // per_image) // cost)


@dataclass(frozen=True)
class RunHooks:
    """What a caller hears of a running search, and how it asks it to pause.

    ``on_commit(state)`` is called after each group's results are committed to the state (to
    show progress, or to save); ``should_stop()`` is asked before each group, and True pauses
    the search at that group boundary. Neither can change what the search computes.
    """

    on_commit: Callable[[SearchState], None] | None = None
    should_stop: Callable[[], bool] | None = None

    def committed(self, state: SearchState) -> None:
        """Tell the caller that a group was committed to ``state``."""
        if self.on_commit is not None:
            self.on_commit(state)

    def stop_requested(self) -> bool:
        """Whether the caller asks the search to pause now."""
        return self.should_stop is not None and self.should_stop()

    def then(self, on_commit: Callable[[SearchState], None]) -> RunHooks:
        """These hooks, with ``on_commit`` called after this value's own."""
        first = self.on_commit

        def both(state: SearchState) -> None:
            if first is not None:
                first(state)
            on_commit(state)

        return RunHooks(on_commit=both, should_stop=self.should_stop)


NO_HOOKS = RunHooks()


def advance(
    state: SearchState,
    strategy: Strategy,
    classifier: Classifier,
    rules: Sequence[StoppingRule],
    *,
    hooks: RunHooks = NO_HOOKS,
    max_iterations: int | None = None,
) -> SearchState:
    """Advance every active run until the rules stop it (or ``max_iterations`` more iterations).

    Each iteration takes the active runs in order and advances them group by group; each
    group's results are committed to ``state`` at once, then ``hooks`` hear of it (to show
    progress, or to save). ``hooks`` are asked before each group whether to stop, so a search
    can pause at any group boundary. A state paused mid-iteration resumes by first finishing
    that iteration's remaining runs, in the same groups as an uninterrupted search would have
    used, so a paused and resumed search computes exactly what an uninterrupted one does.
    """
    strategy.check_shape(classifier.info.input_shape)
    cost = step_cost(strategy, classifier)
    group = group_runs(cost, classifier.num_classes, state.images[0].numel(), classifier.device)
    batch = strategy.batch_runs(len(state.seeds))
    to_end = strategy.draws_to_end
    if not state.memory:
        state.memory = strategy.init_memory(state)
    apply_rules(state, rules, cost, to_end=to_end)
    # Black-box steps only score: on a CPU engine with one-core copies they run side by side.
    lanes = [] if strategy.white_box else classifier.lanes()
    scratch = [Scratch() for _ in range(max(1, len(lanes)))]
    done = 0
    while max_iterations is None or done < max_iterations:
        active = (state.status == ACTIVE).nonzero().flatten()
        if len(active) == 0:
            break
        lagging = state.iterations[active]
        pending = active[lagging == lagging.min()]
        for runs in _groups(pending, group, batch):
            if hooks.stop_requested():
                return state
            if len(lanes) > 1 and len(runs) > 1:
                _step_in_lanes(state, strategy, classifier, lanes, runs, scratch)
            else:
                _step_group(state, strategy, classifier, runs, scratch[0])
            apply_rules(state, rules, cost, to_end=to_end)
            hooks.committed(state)
        done += 1
    return state


def _groups(pending: torch.Tensor, group: int, batch: int | None) -> list[torch.Tensor]:
    """The groups of the ``pending`` runs (rows of the layout, in order) that one iteration
    steps: ``group`` at a time, or, for a strategy with fixed batches, those of each batch of
    ``batch`` rows of the layout (the rows of a batch that are still pending), so that the
    groups depend on the layout alone and a resumed search meets the same ones."""
    if batch is None:
        return [pending[start : start + group] for start in range(0, len(pending), group)]
    which = pending // batch
    return [pending[which == b] for b in torch.unique_consecutive(which).tolist()]


def _step_group(
    state: SearchState,
    strategy: Strategy,
    classifier: Classifier,
    runs: torch.Tensor,
    scratch: Scratch,
) -> None:
    """One iteration of the given runs, committed to ``state``: each keeps its best image."""
    group = _group(state, runs, classifier.device, scratch)
    candidates, scores = strategy.step(classifier, group)
    _commit(state, strategy, classifier, runs, group, candidates, scores)


def _step_in_lanes(
    state: SearchState,
    strategy: Strategy,
    classifier: Classifier,
    lanes: list[Classifier],
    runs: torch.Tensor,
    scratch: list[Scratch],
) -> None:
    """One iteration of the given runs, split among ``lanes`` (see :meth:`Classifier.lanes`)
    that step their parts side by side, each on a thread of one core; then committed in
    order, as :func:`_step_group` commits.

    A run's step depends on its own image, score, memory and generator alone, and the
    engine's scores of an image on nothing else in its batch, so the lanes compute what one
    group would have.
    """
    parts = [part for part in torch.tensor_split(runs, len(lanes)) if len(part)]
    groups = [
        _group(state, part, classifier.device, room)
        for part, room in zip(parts, scratch, strict=False)
    ]
    futures = [
        _lane_pool(len(lanes)).submit(strategy.step, lane, group)
        for lane, group in zip(lanes, groups, strict=False)
    ]
    try:
        steps = [future.result() for future in futures]
    finally:
        for future in futures:  # every lane is done with its group before any is reused
            future.exception()
        for lane in lanes:
            classifier.queries += lane.queries
            lane.queries = 0
    for part, group, (candidates, scores) in zip(parts, groups, steps, strict=True):
        _commit(state, strategy, classifier, part, group, candidates, scores)


@functools.cache
def _lane_pool(lanes: int) -> ThreadPoolExecutor:
    """Threads for :func:`_step_in_lanes`, each computing with one PyTorch thread (PyTorch's
    thread count is the calling thread's own), so that a lane keeps to its core."""
    return ThreadPoolExecutor(
        max_workers=lanes,
        thread_name_prefix="identikit-lane",
        initializer=torch.set_num_threads,
        initargs=(1,),
    )


os.register_at_fork(after_in_child=_lane_pool.cache_clear)


def _group(state: SearchState, runs: torch.Tensor, device: torch.device, scratch: Scratch) -> Group:
    """The rows ``runs`` of ``state`` as a group, with the generators of their iterations."""
    return Group(
        images=state.images[runs],
        scores=state.scores[runs],
        targets=state.targets[runs],
        iterations=state.iterations[runs],
        generators=[
            # one transfer of the iteration counts, not one per run (each a GPU sync)
            run_generator(state.seeds[r], iteration, device)
            for r, iteration in zip(runs.tolist(), state.iterations[runs].tolist(), strict=True)
        ],
        memory={key: value[runs] for key, value in state.memory.items()},
        scratch=scratch,
    )


def _commit(
    state: SearchState,
    strategy: Strategy,
    classifier: Classifier,
    runs: torch.Tensor,
    group: Group,
    candidates: torch.Tensor,
    scores: torch.Tensor,
) -> None:
    """Commit the step of ``group`` (rows ``runs``) to ``state``: each run keeps its best."""
    improved = scores > state.scores[runs]
    if strategy.draws_to_end:  # the run's image is its last (see Strategy.draws_to_end)
        improved = torch.ones_like(improved)
    state.images[runs] = torch.where(improved.view(-1, 1, 1, 1), candidates, group.images)
    state.scores[runs] = torch.where(improved, scores, group.scores)
    moved = improved if group.progressed is None else improved | group.progressed
    state.stale[runs] = torch.where(moved, 0, state.stale[runs] + 1)
    state.iterations[runs] += 1
    state.queries[runs] += step_cost(strategy, classifier)
    for key, value in group.memory.items():
        state.memory[key][runs] = value
    for r, confidence in zip(runs.tolist(), state.scores[runs].exp().tolist(), strict=True):
        state.history[r].append(confidence)
