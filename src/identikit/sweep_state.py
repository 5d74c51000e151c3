"""Saving and restoring a sweep's whole search state, so that a sweep can resume.

The state file ``DIR/sweep-state.npz`` holds every tensor of the
:class:`~identikit.search.base.SearchState` plus the sweep's identity (settings and model hash)
as JSON. It is a plain ``.npz`` loaded with ``allow_pickle=False``: no code can ride in it.
Random generators need no saving: each run's generator is re-seeded from (run seed, iteration).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.atomic import atomic_write_bytes
from identikit.errors import IdentikitError
from identikit.search.base import SearchState

STATE_FILE = "sweep-state.npz"
_TENSORS = ("targets", "images", "scores", "status", "iterations", "queries", "stale")


def save_state(
    folder: str | os.PathLike[str], identity: dict[str, Any], state: SearchState, *, seconds: float
) -> None:
    """Write the state atomically; ``identity`` says which sweep it belongs to."""
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
    )
    atomic_write_bytes(Path(folder) / STATE_FILE, buffer.getvalue())


def load_state(
    folder: str | os.PathLike[str], device: torch.device
) -> tuple[dict[str, Any], SearchState, float] | None:
    """The saved (identity, state, seconds so far), or None when the folder holds no state."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            identity = json.loads(str(npz["identity"]))
            lengths = npz["history_lengths"].tolist()
            flat = npz["history"].tolist()
            tensors = {name: torch.from_numpy(npz[name].copy()).to(device) for name in _TENSORS}
            memory = {
                name.removeprefix("memory_"): torch.from_numpy(npz[name].copy()).to(device)
                for name in npz.files
                if name.startswith("memory_")
            }
            seeds = [int(s) for s in npz["seeds"]]
            seconds = float(npz["seconds"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise IdentikitError(
            f"{path} is unreadable ({exc}); delete it to start the sweep afresh"
        ) from None
    offsets = np.cumsum([0, *lengths]).tolist()
    history = [flat[a:b] for a, b in itertools.pairwise(offsets)]
    state = SearchState(seeds=seeds, history=history, memory=memory, **tensors)
    return identity, state, seconds
