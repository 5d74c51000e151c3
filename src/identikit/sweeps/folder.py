"""A finished sweep's folder: its one writer and its one reader.

The folder holds ``identikits.npz`` (the best image of every run and its digit), ``grid.png``
(their picture) and ``results.json`` (the record, written last: it marks the sweep finished).
:func:`write_sweep_folder` writes them, each atomically; :func:`read_sweep_folder` reads the
folder back, every field checked by :mod:`identikit.sweeps.records`, as one
:class:`SweepFolder`. Resume, ``judge`` and ``report`` all read sweeps through it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.figures import identikit_grid
from identikit.base.safe_files import read_json
from identikit.base.shapes import ImageShape
from identikit.strategies import SearchState
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.records import (
    IDENTIKITS_FILE,
    RESULTS_FILE,
    SWEEP_SHAPE,
    checked_results,
    read_identikits,
)

GRID_FILE = "grid.png"


@dataclass(frozen=True, eq=False)
class SweepFolder:
    """A finished sweep as read back: its record, its settings and its identikits."""

    path: Path
    results: dict[str, Any]  # the validated results.json record, summary recomputed
    config: SweepConfig  # the settings it was run with
    images: np.ndarray  # (N, H, W) float32 in [0, 1], one per run, in the order of the runs
    digits: np.ndarray  # (N,) int64, the class each run searched for

    @property
    def shape(self) -> ImageShape:
        """The shape of one identikit (grey: one channel)."""
        return ImageShape(1, int(self.images.shape[1]), int(self.images.shape[2]))

    @property
    def confidences(self) -> list[float]:
        """The best confidence each run reached, in the order of the runs."""
        return [float(run["confidence"]) for run in self.results["runs"]]


def read_sweep_folder(
    folder: str | os.PathLike[str], *, root: Path | None = None, shape: ImageShape = SWEEP_SHAPE
) -> SweepFolder:
    """The finished sweep in ``folder``, every file checked (inside ``root`` when given);
    ``shape`` is the image shape of the sweep's model."""
    path = Path(folder)
    if not os.path.lexists(path / RESULTS_FILE):
        raise IdentikitError(f"{path} holds no finished sweep (no {RESULTS_FILE})")
    record = path / RESULTS_FILE
    results, config = checked_results(read_json(record, root=root), record)
    images, digits = read_identikits(path, results, root=root, shape=shape)
    return SweepFolder(path, results, config, images, digits)


def grid_png(results: dict[str, Any], images: np.ndarray, digits: np.ndarray) -> bytes:
    """The picture of a sweep's identikits, labelled with their confidences."""
    return identikit_grid(
        images,
        digits,
        [r["confidence"] for r in results["runs"]],
        target=results["settings"]["target"],
        title=f"{results['model']['name']}: {results['settings']['strategy']}",
    )


def write_sweep_folder(
    out: str | os.PathLike[str], results: dict[str, Any], state: SearchState
) -> None:
    """Write ``identikits.npz``, ``grid.png`` and, last, ``results.json`` into ``out``,
    atomically: ``results.json`` marks a finished sweep, so it is written once the rest is."""
    folder = Path(out)
    # Grey images are kept as (N, H, W): the one channel is implied.
    images = state.images.detach().cpu().numpy()[:, 0].astype(np.float32)
    digits = np.array([r["digit"] for r in results["runs"]], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, digits=digits)
    atomic_write_bytes(folder / IDENTIKITS_FILE, buffer.getvalue())
    atomic_write_bytes(folder / GRID_FILE, grid_png(results, images, digits))
    atomic_write_text(folder / RESULTS_FILE, json.dumps(results, indent=1, allow_nan=False))
