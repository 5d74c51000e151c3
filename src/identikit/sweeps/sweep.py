"""Running a sweep into a folder: resumable, saved every few seconds, never redone.

``sweep_to_folder`` keeps the whole search state in ``DIR/sweep-state.npz``, written atomically
every few seconds (``SweepOptions.save_every``), when paused (Ctrl-C) and at the end. Running
the same sweep again on the same folder continues where it stopped, or, when it had finished,
just returns its results; a folder holding a different sweep is refused, never mixed.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from identikit.base.atomic import atomic_write_bytes, remove_leftovers
from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.base.folder_lock import locked_folder
from identikit.base.safe_files import read_npz, read_regular
from identikit.classifier.classifier import Classifier
from identikit.strategies import PriorInputs, SearchState, Strategy, advance, initial_state
from identikit.strategies.base import NO_HOOKS, RunHooks, check_targets
from identikit.strategies.registry import is_white_box
from identikit.strategies.stopping import ACTIVE, CONVERGED, STUCK
from identikit.sweeps.experiment import (
    SweepConfig,
    identity_differences,
    results_identity,
    sweep_identity,
    sweep_results,
)
from identikit.sweeps.folder import GRID_FILE, SHARDS_FOLDER, write_grid, write_sweep_folder
from identikit.sweeps.records import (
    IDENTIKITS_FILE,
    RESULTS_FILE,
    read_identikits,
    read_results,
)
from identikit.sweeps.sweep_state import STATE_FILE, load_state, save_state

SAVE_EVERY = 5.0  # seconds between saves: what a kill -9 can lose, plus one group
# Sweeps of more runs than this are announced before they start (see size_line): every
# class of a 1,000-class model is a large sweep that a user may not have meant.
ANNOUNCED_RUNS = 100
NO_INPUTS = PriorInputs()


def size_line(
    config: SweepConfig, images_per_s: float | None = None, *, sweeps: int = 1
) -> str | None:
    """One line that says a large sweep's size before it starts: its runs (classes x runs
    per class, times ``sweeps`` for a comparison of several strategies), its budget in model
    queries (runs x ``max_queries``) and, where the scoring engine was measured
    (``images_per_s``), the longest it can take at that rate (runs that converge or stall
    stop sooner; none for a white-box strategy: a gradient step's backward pass is not in the
    rate). None for a sweep of
    :data:`ANNOUNCED_RUNS` runs or fewer, or one whose classes are not yet resolved."""
    if not config.resolved:
        return None
    classes = len(config.targets)
    runs = classes * config.runs * sweeps
    if runs <= ANNOUNCED_RUNS:
        return None
    queries = runs * config.max_queries
    line = (
        f"sweep of {runs:,} runs ({classes:,} classes x {config.runs:,} runs"
        f"{f' x {sweeps} strategies' if sweeps > 1 else ''}), "
        f"budget {queries:,} model queries ({config.max_queries:,} a run)"
    )
    if images_per_s and is_white_box(config.strategy):
        # The measured rate is of scoring alone; a gradient step's backward pass (through
        # identikit's ONNX interpreter, for an ONNX model) ran 100 times slower on
        # EfficientNet-Lite0, so a time from it would mislead.
        line += "; no time estimate (the engine's rate is for scoring, not gradient steps)"
    elif images_per_s:
        line += f"; at most {_duration(queries / images_per_s)} at {images_per_s:,.0f} images/s"
    return line


def _duration(seconds: float) -> str:
    """A time for a person: ``40 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass
class SweepOutcome:
    """How a call to :func:`sweep_to_folder` ended."""

    results: dict[str, Any] | None  # None while the sweep is unfinished (paused)
    resumed: bool  # continued a saved state
    already_done: bool  # the folder held this sweep, finished; nothing was computed
    rebuilt: list[str] = field(default_factory=list)  # outputs found missing and written again


class SweepProgress:
    """A progress bar of finished runs, with converged / stuck / active counts and the best
    confidence reached so far for each digit."""

    def __init__(self, state: SearchState, *, enabled: bool = True) -> None:
        self.bar = tqdm(
            total=len(state.seeds),
            desc="search",
            unit="run",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
        self(state)

    def __call__(self, state: SearchState) -> None:
        status = state.status.tolist()
        best: dict[int, float] = {}
        for target, confidence in zip(
            state.targets.tolist(), state.confidences.tolist(), strict=True
        ):
            best[target] = max(best.get(target, 0.0), confidence)
        self.bar.set_postfix_str(
            f"iteration {int(state.iterations.max())} converged {status.count(CONVERGED)} "
            f"stuck {status.count(STUCK)} active {status.count(ACTIVE)} | " + best_text(best),
            refresh=False,
        )
        self.bar.update(len(status) - status.count(ACTIVE) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


# Classes whose best confidence the progress line names one by one; beyond, it summarises
# (a 1,000-class sweep's line ran to 14,000 characters).
SHOWN_CLASSES = 20


def best_text(best: dict[int, float]) -> str:
    """The progress line's best confidence per class: each class where there are at most
    :data:`SHOWN_CLASSES`, else the lowest, median and highest, and the classes furthest
    behind."""
    if len(best) <= SHOWN_CLASSES:
        return "best " + " ".join(f"{d}:{c:.3f}" for d, c in sorted(best.items()))
    values = sorted(best.values())
    behind = sorted(best.items(), key=lambda item: (item[1], item[0]))[:5]
    return (
        f"best of {len(best):,} classes: min {values[0]:.3f} median "
        f"{values[len(values) // 2]:.3f} max {values[-1]:.3f}; lowest "
        + " ".join(f"{d}:{c:.3f}" for d, c in behind)
    )


def check_writable(folder: Path) -> None:
    """Create ``folder`` and prove it takes files, before any work is spent on a sweep."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentikitError(
            f"cannot create output folder {folder}: {exc.strerror or exc}"
        ) from None
    probe = folder / ".identikit-write-test"
    atomic_write_bytes(probe, b"")
    probe.unlink()


def _refuse_if_different(folder: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    differences = identity_differences(saved, current)
    if differences:
        raise DifferentSweepError(
            f"{folder} already holds a different sweep ({'; '.join(differences)}): "
            "use another --out, or the saved settings to resume it"
        )


def engine_record(classifier: Classifier) -> dict[str, Any]:
    """What scored a sweep, as far as it can change results: another engine, chunk size or
    device rounds differently in the last bits, and a near-tie between candidates can then go
    the other way."""
    choice = classifier.choice
    return {
        "backend": choice.backend,
        "precision": choice.precision,
        "chunk_size": choice.chunk_size,
        "device": str(classifier.device),
    }


def _engines(
    folder: Path, saved: dict[str, Any], current: dict[str, Any], allow: bool
) -> list[Any]:
    """The engines a resumed sweep has used, ending with ``current``; a change is refused
    unless ``allow``."""
    engines = recorded_engines(saved)
    if not engines:
        return [current]  # a state saved before engines were recorded
    last = engines[-1]
    if last == current:
        return engines
    if not allow:
        raise DifferentSweepError(
            f"{folder} was searched with {_describe(last)}; this process would score with "
            f"{_describe(current)}, which can change results: resume with --backend "
            f"{last.get('backend')} --chunk-size {last.get('chunk_size')} on "
            f"{last.get('device')}, or pass --allow-engine-change (every engine is recorded)"
        )
    return [*engines, current]


def recorded_engines(identity: dict[str, Any]) -> list[dict[str, Any]]:
    """The engines a saved state records (none where it predates them or was edited)."""
    engines = identity.get("engines")
    if isinstance(engines, list) and all(isinstance(e, dict) for e in engines):
        return engines
    return []


def _describe(engine: dict[str, Any]) -> str:
    return (
        f"{engine.get('backend')} ({engine.get('precision')}, chunks of "
        f"{engine.get('chunk_size')}, {engine.get('device')})"
    )


def _check_layout(folder: Path, state: SearchState, config: SweepConfig) -> None:
    layout = config.layout()
    if state.targets.tolist() != [d for d, _, _ in layout] or state.seeds != [
        s for _, _, s in layout
    ]:
        raise IdentikitError(
            f"{folder / STATE_FILE} does not hold the runs of these settings (damaged or "
            "edited); delete it to start the sweep afresh"
        )


def _missing_outputs(folder: Path) -> tuple[list[str], dict[str, Any] | None]:
    """The outputs of a finished sweep that are missing or unreadable, sorted by name, and
    its results record where that one is sound (read once, for the caller too)."""
    missing = []
    try:
        results = read_results(folder)
    except IdentikitError:
        missing.append(RESULTS_FILE)
        results = None
    try:
        if results is not None:
            read_identikits(folder, results)
        elif not {"images", "digits"} <= set(read_npz(folder / IDENTIKITS_FILE)):
            missing.append(IDENTIKITS_FILE)
    except IdentikitError:
        missing.append(IDENTIKITS_FILE)
    if not _png_ok(folder / GRID_FILE):
        missing.append(GRID_FILE)
    return sorted(missing), results


def _png_ok(path: Path) -> bool:
    try:
        return read_regular(path).startswith(b"\x89PNG\r\n\x1a\n")
    except IdentikitError:
        return False


def _finished_without_state(folder: Path, identity: dict[str, Any]) -> SweepOutcome:
    """A folder whose sweep finished and whose state is gone: check, and rebuild the grid."""
    existing = read_results(folder)
    _refuse_if_different(folder, results_identity(existing), identity)
    try:
        images, digits = read_identikits(folder, existing)
    except IdentikitError as exc:
        raise IdentikitError(
            f"{exc}; no {STATE_FILE} is left to rebuild it from: delete {folder / RESULTS_FILE} "
            "to search again"
        ) from None
    if not _png_ok(folder / GRID_FILE):
        write_grid(folder, existing, images, digits)
        return SweepOutcome(existing, resumed=False, already_done=True, rebuilt=[GRID_FILE])
    return SweepOutcome(existing, resumed=False, already_done=True)


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """How a sweep runs in its folder; none of it changes an image or a confidence.

    ``progress``: a bar on stderr; ``model_path``: the model file, recorded in results.json;
    ``save_every``: seconds between saves of the resumable state; ``allow_engine_change``:
    resume with another scoring engine than the sweep began with (every engine is recorded).
    """

    progress: bool = True
    model_path: str | None = None
    save_every: float = SAVE_EVERY
    allow_engine_change: bool = False


DEFAULT_OPTIONS = SweepOptions()


def sweep_to_folder(
    classifier: Classifier,
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    hooks: RunHooks = NO_HOOKS,
    priors: PriorInputs = NO_INPUTS,
    options: SweepOptions = DEFAULT_OPTIONS,
) -> SweepOutcome:
    """Run (or resume, or recall) the sweep ``config`` in folder ``out``.

    ``priors``: what the strategy's priors need from the training data (see
    :func:`identikit.sweeps.training_data.prior_inputs`); ``hooks`` hear of every committed
    group (after the state is saved where due) and may pause the sweep.

    The folder is locked for the whole call (a second process is refused), what a killed
    writer left behind is cleaned up, and a finished sweep's outputs are verified and rebuilt
    from its saved state where one is missing or damaged.
    """
    folder = Path(out)
    # "Every class" becomes the model's classes before the sweep's identity is computed.
    config = config.for_classes(classifier.num_classes)
    check_targets(classifier, config.targets)
    # Before any work: refuses missing prior inputs, and (Strategy.check_shape) a shape the
    # strategy cannot search; settings that depend on the image are filled in for its shape.
    strategy = config.spec.build(priors).for_shape(classifier.info.input_shape)
    with locked_folder(folder):
        remove_leftovers(folder)
        check_writable(folder)
        identity = sweep_identity(classifier, config)
        saved = load_state(folder, classifier.device, classifier.info.input_shape)
        if saved is None and os.path.lexists(folder / SHARDS_FOLDER):
            raise IdentikitError(
                f"{folder} holds a sweep begun on a cluster: resume it with --cluster ray"
            )
        if saved is None and os.path.lexists(folder / RESULTS_FILE):
            return _finished_without_state(folder, identity)
        start = _start(classifier, config, folder, identity, saved, options)
        if isinstance(start, SweepOutcome):
            return start
        seconds = _search(classifier, strategy, config, folder, start, hooks, options)
        if bool((start.state.status == ACTIVE).any()):
            return SweepOutcome(None, resumed=start.resumed, already_done=False)
        results = sweep_results(
            classifier,
            config,
            start.state,
            seconds=seconds,
            model_path=options.model_path,
            engines=start.engines,
        )
        write_sweep_folder(folder, results, start.state)
        return SweepOutcome(
            results, resumed=start.resumed, already_done=False, rebuilt=start.missing
        )


def recall_sweep(
    classifier: Classifier, config: SweepConfig, folder: Path, options: SweepOptions
) -> SweepOutcome | None:
    """For a runner holding ``folder``'s lock (a cluster's): the outcome where the folder
    holds this sweep, finished (outputs found missing rebuilt from its state), or None where
    it holds no sweep; another sweep, or this one unfinished on one machine, is refused."""
    identity = sweep_identity(classifier, config)
    saved = load_state(folder, classifier.device, classifier.info.input_shape)
    if saved is None:
        if os.path.lexists(folder / RESULTS_FILE):
            return _finished_without_state(folder, identity)
        return None
    if bool((saved[1].status == ACTIVE).any()):
        _refuse_if_different(folder, saved[0], identity)
        raise IdentikitError(
            f"{folder} holds a sweep begun on this machine: resume it without --cluster"
        )
    start = _start(classifier, config, folder, identity, saved, options)
    if isinstance(start, SweepOutcome):
        return start
    results = sweep_results(
        classifier,
        config,
        start.state,
        seconds=start.seconds,
        model_path=options.model_path,
        engines=start.engines,
    )
    write_sweep_folder(folder, results, start.state)
    return SweepOutcome(results, resumed=True, already_done=False, rebuilt=start.missing)


@dataclass
class _Start:
    """Where a sweep's search begins: a fresh or saved state, and what it records."""

    state: SearchState
    identity: dict[str, Any]  # with the engines that scored it
    engines: list[dict[str, Any]]
    seconds: float  # spent on the state before this call
    resumed: bool
    missing: list[str] = field(default_factory=list)  # outputs of a finished sweep, to rebuild


def _start(
    classifier: Classifier,
    config: SweepConfig,
    folder: Path,
    identity: dict[str, Any],
    saved: tuple[dict[str, Any], SearchState, float] | None,
    options: SweepOptions,
) -> _Start | SweepOutcome:
    """A fresh state, or the saved one checked against this sweep; or the outcome at once
    where the saved sweep is finished and its outputs sound."""
    engines = [engine_record(classifier)]
    if saved is None:
        layout = config.layout()
        state = initial_state(
            classifier, [d for d, _, _ in layout], [s for _, _, s in layout], start=config.start
        )
        return _Start(state, {**identity, "engines": engines}, engines, 0.0, resumed=False)
    recorded, state, earlier = saved
    _refuse_if_different(folder, recorded, identity)
    _check_layout(folder, state, config)
    missing: list[str] = []
    if bool((state.status == ACTIVE).any()):
        engines = _engines(folder, recorded, engines[0], options.allow_engine_change)
    else:
        missing, results = _missing_outputs(folder)
        if not missing and results is not None:
            return SweepOutcome(results, resumed=True, already_done=True)
        engines = recorded_engines(recorded) or engines
    identity = {**identity, "engines": engines}
    return _Start(state, identity, engines, earlier, resumed=True, missing=missing)


def _search(
    classifier: Classifier,
    strategy: Strategy,
    config: SweepConfig,
    folder: Path,
    start: _Start,
    hooks: RunHooks,
    options: SweepOptions,
) -> float:
    """Advance ``start.state`` until its rules or ``hooks`` stop it, saving it every
    ``options.save_every`` seconds and at the end; the seconds it has taken in all."""
    began = last_save = time.perf_counter()
    bar = SweepProgress(start.state, enabled=options.progress)

    def seconds() -> float:
        return start.seconds + time.perf_counter() - began

    def commit(state: SearchState) -> None:
        nonlocal last_save
        bar(state)
        if time.perf_counter() - last_save >= options.save_every:
            save_state(folder, start.identity, state, seconds=seconds())
            last_save = time.perf_counter()

    try:
        advance(
            start.state,
            strategy,
            classifier,
            config.rules(),
            hooks=RunHooks(on_commit=commit, should_stop=hooks.should_stop).then(hooks.committed),
        )
    finally:
        bar.close()
        # Whatever ended the loop (the end, a pause, an error), the last whole groups are kept.
        total = seconds()
        save_state(folder, start.identity, start.state, seconds=total)
    return total
