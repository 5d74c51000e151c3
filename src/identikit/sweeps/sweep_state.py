"""Saving and restoring a sweep's whole search state, so that a sweep can resume.

The state file ``DIR/sweep-state.npz`` holds every tensor of the
:class:`~identikit.strategies.base.SearchState` plus the sweep's identity (settings and model hash)
as JSON. It is a plain ``.npz`` loaded with ``allow_pickle=False``: no code can ride in it.
Random generators need no saving: each run's generator is re-seeded from (run seed, iteration).
"""

from __future__ import annotations

import io
import itertools
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError
from identikit.base.safe_files import read_npz
from identikit.base.shapes import ImageShape
from identikit.strategies.base import SearchState
from identikit.strategies.stopping import STATUS_NAMES

STATE_FILE = "sweep-state.npz"
_TENSORS = ("targets", "images", "scores", "status", "iterations", "queries", "stale")
# The format of sweep-state.npz: 1 had no version array; 2 records it.
STATE_VERSION = 2
_EXTRA = ("seeds", "history", "history_lengths", "identity", "seconds")
# Per run: the kinds of number allowed and the shape after the run dimension; None: the shape
# of the model's images.
_SHAPES: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "targets": ("iu", ()),
    "images": ("f", None),
    "scores": ("f", ()),
    "status": ("iu", ()),
    "iterations": ("iu", ()),
    "queries": ("iu", ()),
    "stale": ("iu", ()),
    "seeds": ("iu", ()),
    "history_lengths": ("iu", ()),
}
_DTYPES = {
    "targets": np.int64,
    "images": np.float32,
    "scores": np.float32,
    "status": np.int8,
    "iterations": np.int64,
    "queries": np.int64,
    "stale": np.int64,
}


def save_state(
    folder: str | os.PathLike[str],
    identity: dict[str, Any],
    state: SearchState,
    *,
    seconds: float,
    name: str = STATE_FILE,
) -> None:
    """Write the state atomically to ``folder/name``; ``identity`` says which sweep it belongs
    to (a cluster sweep's shards are states of their own runs, each in its own file)."""
    atomic_write_bytes(Path(folder) / name, state_bytes(identity, state, seconds=seconds))


def state_bytes(identity: dict[str, Any], state: SearchState, *, seconds: float) -> bytes:
    """The bytes of a state file: what :func:`save_state` writes and :func:`load_state` reads
    (a cluster's worker makes them, and the driver writes them as they come)."""
    lengths = [len(h) for h in state.history]
    arrays = {name: getattr(state, name).detach().cpu().numpy() for name in _TENSORS}
    arrays.update({f"memory_{k}": v.detach().cpu().numpy() for k, v in state.memory.items()})
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **arrays,
        seeds=np.array(state.seeds, dtype=np.int64),
        history=np.array([c for h in state.history for c in h], dtype=np.float64),
        history_lengths=np.array(lengths, dtype=np.int64),
        identity=np.array(json.dumps(identity, sort_keys=True)),
        seconds=np.array(seconds, dtype=np.float64),
        version=np.array(STATE_VERSION, dtype=np.int64),
    )
    return buffer.getvalue()


def load_state(
    folder: str | os.PathLike[str], device: torch.device, shape: ImageShape, name: str = STATE_FILE
) -> tuple[dict[str, Any], SearchState, float] | None:
    """The saved (identity, state, seconds so far) of ``folder/name``, or None when there is
    no such file; ``shape``: that of the images the model takes.

    Every array is checked (kinds, shapes, one history per run of the right length) before it
    is used: a damaged or hand-edited state is one line naming the file, never a crash later.
    """
    path = Path(folder) / name
    if not os.path.lexists(path):
        return None
    try:
        arrays = read_npz(path)
    except IdentikitError as exc:
        raise _unreadable(path, exc) from None
    _check_version(path, arrays)
    try:
        identity, state, seconds = _unpack(arrays, device, shape, name)
    except IdentikitError as exc:
        raise _unreadable(path, exc) from None
    return identity, state, seconds


class UnreadableState(IdentikitError):
    """A state file that cannot be resumed from; ``reason`` says why, without the advice
    (a cluster's driver gives its own: it sets a shard aside and searches it again)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _unreadable(path: Path, exc: IdentikitError | str) -> UnreadableState:
    """The one-line error for a damaged state, saying how to start afresh."""
    reason = str(exc).removeprefix(f"{path}: ").removeprefix(f"{path.name} ")
    reason = reason.removeprefix("is damaged: ")  # "unreadable" says it already
    return UnreadableState(
        f"{path} is unreadable ({reason}); delete it to start the sweep afresh", reason
    )


def _check_version(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A state without a version was written before versions were recorded (version 1); one
    newer than this code knows is refused, saying so, rather than read as damaged, and one
    below 1 (which no identikit writes) as damaged."""
    version = arrays.get("version", np.array(1))
    if version.shape != () or version.dtype.kind not in "iu":
        raise _unreadable(path, "its version is not a whole number")
    if int(version) > STATE_VERSION:
        raise UnreadableState(
            f"{path} was written by a newer identikit (format version {int(version)}, this one "
            f"reads up to {STATE_VERSION}): resume it with that version, or delete it",
            f"it was written by a newer identikit (format version {int(version)})",
        )
    if int(version) < 1:
        raise _unreadable(
            path,
            f"its format version {int(version)} is not one identikit writes (1 to {STATE_VERSION})",
        )


def _unpack(
    arrays: dict[str, np.ndarray], device: torch.device, shape: ImageShape, name: str
) -> tuple[dict[str, Any], SearchState, float]:
    def fail(what: str) -> NoReturn:
        raise IdentikitError(f"{name} is damaged: {what}")  # prefix dropped above

    missing = [n for n in (*_TENSORS, *_EXTRA) if n not in arrays]
    if missing:
        fail(f"it lacks {', '.join(missing)}")
    identity_array = arrays["identity"]
    if identity_array.shape != () or identity_array.dtype.kind != "U":
        fail("its identity is not a text")
    try:
        identity = json.loads(str(identity_array))
    except ValueError:
        fail("its identity is not JSON")
    if not isinstance(identity, dict):
        fail("its identity is not an object")
    n = len(arrays["seeds"])
    # (``key``, not ``name``: fail() names the file by ``name``.)
    for key, (kind, own) in _SHAPES.items():
        array, tail = arrays[key], shape.dims if own is None else own
        if array.dtype.kind not in kind or array.shape != (n, *tail):
            fail(f"{key} has shape {array.shape} ({array.dtype}), expected {(n, *tail)}")
    for key in (k for k in arrays if k.startswith("memory_")):
        if arrays[key].dtype.kind not in "fiub" or arrays[key].shape[:1] != (n,):
            fail(f"{key} does not have one row per run")
    lengths = arrays["history_lengths"].tolist()
    flat = arrays["history"]
    if flat.dtype.kind != "f" or flat.ndim != 1 or sum(lengths) != len(flat):
        fail("the histories do not add up")
    if lengths != [i + 1 for i in arrays["iterations"].tolist()]:
        fail("a history does not have one entry per iteration")
    problem = _implausible(arrays, lengths)
    if problem is not None:
        fail(problem)
    seconds = arrays["seconds"]
    if seconds.shape != () or seconds.dtype.kind != "f" or not np.isfinite(seconds):
        fail("seconds is not a number")
    if seconds < 0:
        fail("seconds is negative")
    tensors = {
        key: torch.from_numpy(arrays[key].astype(_DTYPES[key])).to(device) for key in _TENSORS
    }
    memory = {
        key.removeprefix("memory_"): torch.from_numpy(arrays[key].copy()).to(device)
        for key in arrays
        if key.startswith("memory_")
    }
    offsets = np.cumsum([0, *lengths]).tolist()
    history = [flat[a:b].tolist() for a, b in itertools.pairwise(offsets)]
    state = SearchState(
        seeds=[int(s) for s in arrays["seeds"]], history=history, memory=memory, **tensors
    )
    return identity, state, float(seconds)


def _implausible(arrays: dict[str, np.ndarray], lengths: list[int]) -> str | None:
    """What no search can have produced in arrays of the right kinds and shapes, or None.

    A search keeps images in [0, 1] and scores that are log-probabilities (finite, at most 0)
    whose confidence is the last of its run's history; counts never go below 0. A state
    holding anything else was edited or damaged, and resuming from it (or merging it, for a
    cluster's shard) would record it as a result.
    """
    if not np.isin(arrays["status"], range(len(STATUS_NAMES))).all():
        return "a run's status is unknown"
    for name in ("targets", "iterations", "queries", "stale"):
        if (arrays[name] < 0).any():
            return f"{name} holds a negative number"
    images, scores, flat = arrays["images"], arrays["scores"], arrays["history"]
    with np.errstate(invalid="ignore"):  # NaN compares false: caught by the finite checks
        if not (np.isfinite(images).all() and ((images >= 0) & (images <= 1)).all()):
            return "an image is not finite or has a pixel outside [0, 1]"
        if not (np.isfinite(scores).all() and (scores <= 0).all()):
            return "a score is not a log-probability (finite, at most 0)"
        if not (np.isfinite(flat).all() and ((flat >= 0) & (flat <= 1)).all()):
            return "a history holds a confidence that is not a probability in [0, 1]"
    if not _histories_end_at_scores(scores, flat, lengths):
        return "a run's score is not the confidence its history ends at"
    for name in (n for n in arrays if n.startswith("memory_")):
        # Strategies start some memory at -inf (a best value not yet seen); never at NaN.
        if arrays[name].dtype.kind == "f" and np.isnan(arrays[name]).any():
            return f"{name} is not a number"
    return None


def _histories_end_at_scores(scores: np.ndarray, flat: np.ndarray, lengths: list[int]) -> bool:
    """Whether every run's history ends at its score's confidence (``exp``), as every commit
    of a search leaves it. The exponential may have been taken on another device, whose last
    bits differ: the two are compared to float32's precision, not exactly."""
    if not lengths:
        return True
    last = flat[np.cumsum(lengths) - 1]
    return bool(np.allclose(np.exp(scores.astype(np.float64)), last, rtol=1e-5, atol=1e-30))


def same_states(a: SearchState, b: SearchState) -> bool:
    """Whether two states hold the same runs, bit for bit (wherever their tensors are)."""

    def same(x: torch.Tensor, y: torch.Tensor) -> bool:
        return x.dtype == y.dtype and torch.equal(x.detach().cpu(), y.detach().cpu())

    return (
        a.seeds == b.seeds
        and a.history == b.history
        and all(same(getattr(a, name), getattr(b, name)) for name in _TENSORS)
        and a.memory.keys() == b.memory.keys()
        and all(same(a.memory[key], b.memory[key]) for key in a.memory)
    )


def merge_states(parts: list[tuple[list[int], SearchState]], runs: int) -> SearchState:
    """One state of ``runs`` runs from ``parts``, each (the rows it holds, its state), which
    together hold every row once: what a sweep split into shards hands back, in the order of
    the whole sweep's runs."""
    rows = [row for part_rows, _ in parts for row in part_rows]
    if sorted(rows) != list(range(runs)):
        raise IdentikitError(f"the parts of a state do not hold each of its {runs} runs once")
    order = torch.empty(runs, dtype=torch.long)
    order[torch.tensor(rows, dtype=torch.long)] = torch.arange(runs)
    states = [state for _, state in parts]

    def joined(tensors: list[torch.Tensor]) -> torch.Tensor:
        whole = torch.cat(tensors)
        return whole[order.to(whole.device)]

    tensors = {name: joined([getattr(s, name) for s in states]) for name in _TENSORS}
    memory = {key: joined([s.memory[key] for s in states]) for key in states[0].memory}
    seeds = [seed for s in states for seed in s.seeds]
    history = [h for s in states for h in s.history]
    place = order.tolist()
    return SearchState(
        seeds=[seeds[i] for i in place],
        history=[history[i] for i in place],
        memory=memory,
        **tensors,
    )
