"""A finished sweep's folder: its one writer and its one reader.

The folder holds ``identikits.npz`` (the best image of every run and its digit),
``results.json`` (the record: it marks the sweep finished) and ``grid.png`` (their picture,
drawn last, so that a figure that fails to draw never costs the results).
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
from identikit.base.errors import IdentikitError, first_line
from identikit.base.figures import identikit_grid
from identikit.base.safe_files import read_json
from identikit.base.shapes import ImageShape
from identikit.strategies import SearchState
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.reconstruction import convergence_measure
from identikit.sweeps.records import (
    IDENTIKITS_FILE,
    RESULTS_FILE,
    checked_results,
    identikit_dims,
    read_identikits,
    sweep_shape,
)

GRID_FILE = "grid.png"
# Where a sweep run on a cluster keeps its plan and each finished shard until the whole sweep
# is written (identikit.cluster.shards); a local sweep refuses a folder holding one.
SHARDS_FOLDER = "shards"


@dataclass(frozen=True, eq=False)
class SweepFolder:
    """A finished sweep as read back: its record, its settings and its identikits."""

    path: Path
    results: dict[str, Any]  # the validated results.json record, summary recomputed
    config: SweepConfig  # the settings it was run with
    # float32 in [0, 1], one per run, in the order of the runs: (N, H, W) for grey images,
    # (N, C, H, W) otherwise, as identikits.npz holds them; ``pixels`` is always (N, C, H, W).
    images: np.ndarray
    digits: np.ndarray  # (N,) int64, the class each run searched for

    @property
    def shape(self) -> ImageShape:
        """The shape of one identikit, as results.json records it (MNIST's before version 2)."""
        return sweep_shape(self.results)

    @property
    def pixels(self) -> np.ndarray:
        """The identikits as (N, C, H, W), whatever their number of channels."""
        return self.images.reshape(self.shape.batch(len(self.images)))

    @property
    def confidences(self) -> list[float]:
        """The best confidence each run reached, in the order of the runs."""
        return [float(run["confidence"]) for run in self.results["runs"]]


def read_sweep_folder(
    folder: str | os.PathLike[str], *, root: Path | None = None, shape: ImageShape | None = None
) -> SweepFolder:
    """The finished sweep in ``folder``, every file checked (inside ``root`` when given);
    ``shape``: the image shape the caller expects (None: whichever results.json records)."""
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
        target=convergence_measure(results["settings"]),
        title=f"{results['model']['name']}: {results['settings']['strategy']}",
        names=results["model"].get("class_names") or (),
    )


def write_sweep_folder(
    out: str | os.PathLike[str], results: dict[str, Any], state: SearchState
) -> None:
    """Write ``identikits.npz``, then ``results.json``, then ``grid.png`` into ``out``, each
    atomically: the results first, so that a figure that fails to draw (a name matplotlib
    cannot set) never loses them; a missing grid is redrawn from them by the next run."""
    folder = Path(out)
    # Grey images are kept as (N, H, W), the one channel implied (as before colour); others
    # as (N, C, H, W).
    pixels = state.images.detach().cpu().numpy().astype(np.float32)
    images = pixels.reshape(identikit_dims(sweep_shape(results), len(pixels)))
    digits = np.array([r["digit"] for r in results["runs"]], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, digits=digits)
    atomic_write_bytes(folder / IDENTIKITS_FILE, buffer.getvalue())
    atomic_write_text(folder / RESULTS_FILE, json.dumps(results, indent=1, allow_nan=False))
    write_grid(folder, results, images, digits)


def write_grid(
    folder: Path, results: dict[str, Any], images: np.ndarray, digits: np.ndarray
) -> None:
    """Draw ``grid.png`` into ``folder``, whose results are saved: a figure that fails to
    draw is a one-line error that says so."""
    try:
        png = grid_png(results, images, digits)
    except Exception as exc:  # matplotlib's own errors, of many types
        raise IdentikitError(
            f"{folder}: the results are saved ({RESULTS_FILE}, {IDENTIKITS_FILE}), but "
            f"{GRID_FILE} could not be drawn ({first_line(exc)})"
        ) from None
    atomic_write_bytes(folder / GRID_FILE, png)
