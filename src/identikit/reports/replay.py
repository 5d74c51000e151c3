"""Replaying runs of a finished sweep to watch them evolve.

A run depends only on its seed, so any run can be computed again, this time keeping its best
image after every iteration. The replay scores its candidates in a different batch than the
sweep did, on the CPU; where the engine's arithmetic depends on the batch (PyTorch's), or the
sweep ran on another device or engine, the last bits of a score may differ and a near-tie may
go the other way, so each replay is checked against the recorded identikit and reported as
faithful or not, with the reason that holds for the engines the sweep recorded
(:func:`why_another_path`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from identikit.classifier.classifier import Classifier
from identikit.strategies import RunHooks, SearchState, advance, initial_state
from identikit.strategies.registry import is_white_box
from identikit.sweeps.folder import SweepFolder
from identikit.sweeps.training_data import prior_inputs, training_dataset

# Iterations replayed per run at most. A GIF shows 48 moments, so a longer replay adds little
# to see but costs in proportion (a square sweep spends one query an iteration and runs for
# thousands): 500 replays every run of the default random-masks sweep (at most 200
# iterations) in full, and a 2,000-iteration square run in a quarter of the time.
REPLAY_ITERATIONS = 500


@dataclass
class Replay:
    """Best image after each iteration of one run, and whether it ends where the sweep did."""

    digit: int
    frames: np.ndarray  # (iterations + 1, H, W) grey, (iterations + 1, C, H, W) otherwise
    faithful: bool
    confidences: list[float]  # best confidence after each iteration, as the replay found it
    complete: bool = True  # False: the run was longer than the replay's iterations


def _frame(image: torch.Tensor) -> np.ndarray:
    """One best image as the sweep's folder holds it: (H, W) grey, (C, H, W) otherwise."""
    pixels = image.detach().cpu().numpy()
    return (pixels[0] if pixels.shape[0] == 1 else pixels).copy()


class _Frames:
    """The best image of every replayed run after each of its iterations, and a bar that counts
    them (on stderr, shown on a terminal only)."""

    def __init__(self, state: SearchState, total: int, *, progress: bool) -> None:
        self.frames: list[list[np.ndarray]] = [[_frame(image)] for image in state.images]
        self.total = total
        self.bar = tqdm(
            total=total,
            desc="replaying",
            unit="it",
            file=sys.stderr,
            disable=not (progress and sys.stderr.isatty()),
            leave=False,
        )

    def __call__(self, state: SearchState) -> None:
        """Keep the new best image of every run that finished an iteration."""
        for row, iterations in enumerate(state.iterations.tolist()):
            if len(self.frames[row]) <= iterations:
                self.frames[row].append(_frame(state.images[row]))
        done = sum(len(f) - 1 for f in self.frames)
        self.bar.update(min(done, self.total) - self.bar.n)


def replay_first_runs(
    classifier: Classifier,
    sweep: SweepFolder,
    *,
    max_iterations: int = REPLAY_ITERATIONS,
    progress: bool = False,
) -> list[Replay]:
    """Replay run 0 of every digit of a sweep (at most ``max_iterations`` iterations each).

    A run longer than that is replayed for its first ``max_iterations`` only (``complete`` is
    False, and so is ``faithful``: its end was not reached).

    ``progress``: a bar on stderr counting the iterations replayed (shown on a terminal only).
    """
    config = sweep.config
    chosen = [(i, r) for i, r in enumerate(sweep.results["runs"]) if r["run"] == 0]
    state = initial_state(
        classifier,
        [r["digit"] for _, r in chosen],
        [r["seed"] for _, r in chosen],
        start=config.start,
    )
    # The recorded runs say how long each replay will be, so the bar knows its end.
    total = sum(min(r["iterations"], max_iterations) for _, r in chosen)
    keep = _Frames(state, total, progress=progress)
    # The priors learn from the same training images as the sweep's did: the model's.
    inputs = prior_inputs(config.spec.needs(), training_dataset(classifier.info))
    strategy = config.spec.build(inputs)
    strategy = strategy.for_shape(classifier.info.input_shape)
    with keep.bar:
        advance(
            state,
            strategy,
            classifier,
            config.rules(),
            hooks=RunHooks(on_commit=keep),
            max_iterations=max_iterations,
        )
    return [
        Replay(
            run["digit"],
            np.stack(keep.frames[row]),
            bool(np.array_equal(keep.frames[row][-1], sweep.images[index])),
            [float(c) for c in state.history[row]],
            complete=run["iterations"] <= max_iterations,
        )
        for row, (index, run) in enumerate(chosen)
    ]


# The engines whose scores of an image do not depend on the rest of the batch (README,
# "Identikits": ONNX Runtime, bit for bit at any batch and thread count).
BATCH_INDEPENDENT = frozenset({"onnx"})


def why_another_path(results: Mapping[str, Any]) -> str:
    """Why a replay of a sweep (``results`` as results.json holds them) may end elsewhere than
    the sweep did, as far as its records tell: the reason that holds for its engines, not a
    guess that a batch-independent engine depends on the batch."""
    scoring = results.get("scoring") or {}
    backend = scoring.get("backend")
    engines = results.get("engines") or []
    kinds = {
        (e.get("backend"), e.get("precision"), e.get("chunk_size"), e.get("device"))
        for e in engines
    }
    device = str((results.get("environment") or {}).get("device", "cpu"))
    if len(kinds) > 1:
        return "the sweep was resumed on another engine, and the replay scores with its last one"
    if not device.startswith("cpu"):
        return f"the sweep ran on {device}, the replay on the CPU, which rounds otherwise"
    if is_white_box(str(results.get("settings", {}).get("strategy"))):
        return "its gradients come from PyTorch, whose last bits can change with the batch"
    if backend in BATCH_INDEPENDENT:
        return (
            "ONNX Runtime scores an image alike in any batch: the CPU, ONNX Runtime, the "
            "model's export or the recorded identikit differs from the sweep's"
        )
    if backend is None:
        return "the sweep's engine is not recorded; PyTorch's can round otherwise by batch"
    return f"{backend} (PyTorch) rounds an image's scores in the last bits by batch"
