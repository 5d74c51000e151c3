"""Running a sweep into a folder: resumable, saved every few seconds, never redone.

``sweep_to_folder`` keeps the whole search state in ``DIR/sweep-state.npz``, written atomically
every ``save_every`` seconds, when paused (Ctrl-C) and at the end. Running the same sweep again
on the same folder continues where it stopped, or, when it had finished, just returns its
results; a folder holding a different sweep is refused, never mixed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from identikit.atomic import atomic_write_bytes
from identikit.classifier import Classifier
from identikit.errors import DifferentSweepError, IdentikitError
from identikit.experiment import (
    SweepConfig,
    identity_differences,
    sweep_identity,
    sweep_results,
    write_sweep,
)
from identikit.search import SearchState, advance, initial_state, make_strategy
from identikit.search.base import check_targets
from identikit.search.stopping import ACTIVE, CONVERGED, STUCK
from identikit.sweep_state import load_state, save_state

SAVE_EVERY = 5.0  # seconds between saves: what a kill -9 can lose, plus one group


@dataclass
class SweepOutcome:
    """How a call to :func:`sweep_to_folder` ended."""

    results: dict[str, Any] | None  # None while the sweep is unfinished (paused)
    resumed: bool  # continued a saved state
    already_done: bool  # the folder held this sweep, finished; nothing was computed


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
            f"stuck {status.count(STUCK)} active {status.count(ACTIVE)} | best "
            + " ".join(f"{d}:{c:.3f}" for d, c in sorted(best.items())),
            refresh=False,
        )
        self.bar.update(len(status) - status.count(ACTIVE) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


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


def _existing_results(folder: Path) -> dict[str, Any] | None:
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
        return results if isinstance(results, dict) else None
    except (OSError, ValueError):
        return None


def _refuse_if_different(folder: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    differences = identity_differences(saved, current)
    if differences:
        raise DifferentSweepError(
            f"{folder} already holds a different sweep ({'; '.join(differences)}): "
            "use another --out, or the saved settings to resume it"
        )


def sweep_to_folder(
    classifier: Classifier,
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    model_path: str | None = None,
    save_every: float = SAVE_EVERY,
    should_stop: Callable[[], bool] | None = None,
) -> SweepOutcome:
    """Run (or resume, or recall) the sweep ``config`` in folder ``out``."""
    folder = Path(out)
    check_targets(classifier, config.digits)
    check_writable(folder)
    identity = sweep_identity(classifier, config)
    saved = load_state(folder, classifier.device)
    existing = _existing_results(folder)
    if saved is None and existing is not None:
        recorded = {
            "settings": existing.get("settings"),
            "model_sha256": existing.get("model", {}).get("sha256"),
        }
        _refuse_if_different(folder, recorded, identity)
        return SweepOutcome(existing, resumed=False, already_done=True)
    if saved is not None:
        _refuse_if_different(folder, saved[0], identity)
        _, state, earlier = saved
        if existing is not None and not bool((state.status == ACTIVE).any()):
            return SweepOutcome(existing, resumed=True, already_done=True)
    else:
        layout = config.layout()
        state = initial_state(
            classifier, [d for d, _, _ in layout], [s for _, _, s in layout], start=config.start
        )
        earlier = 0.0
    started = last_save = time.perf_counter()
    bar = SweepProgress(state, enabled=progress)

    def commit(state: SearchState) -> None:
        nonlocal last_save
        bar(state)
        if time.perf_counter() - last_save >= save_every:
            save_state(folder, identity, state, seconds=earlier + time.perf_counter() - started)
            last_save = time.perf_counter()

    strategy = make_strategy(config.strategy, **config.strategy_settings)
    try:
        advance(
            state, strategy, classifier, config.rules(), on_commit=commit, should_stop=should_stop
        )
    finally:
        bar.close()
        # Whatever ended the loop (the end, a pause, an error), the last whole groups are kept.
        seconds = earlier + time.perf_counter() - started
        save_state(folder, identity, state, seconds=seconds)
    if bool((state.status == ACTIVE).any()):
        return SweepOutcome(None, resumed=saved is not None, already_done=False)
    results = sweep_results(classifier, config, state, seconds=seconds, model_path=model_path)
    write_sweep(folder, results, state)
    return SweepOutcome(results, resumed=saved is not None, already_done=False)
