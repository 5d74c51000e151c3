"""The sections of the report page, one per kind of result, each read from its files.

Every file goes through its validating reader (:mod:`identikit.sweeps.folder` for sweeps,
:mod:`identikit.sweeps.result_files` for the other records), inside the report's folder only,
and becomes what the page template shows: figures inlined as data URIs, numbers as read.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from identikit.base import figures
from identikit.base.errors import IdentikitError
from identikit.base.safe_files import display_name, read_regular
from identikit.data.datasets import DATASETS, default_root, find_file, load_dataset
from identikit.reports.cards import recorded_input
from identikit.strategies.registry import is_white_box
from identikit.sweeps.compare import NO_STALLING, curves
from identikit.sweeps.folder import SweepFolder, read_sweep_folder
from identikit.sweeps.records import Fields
from identikit.sweeps.result_files import (
    JUDGE_FILE,
    read_ceiling,
    read_certainty,
    read_comparison,
    read_verdict,
)


def data_uri(data: bytes, kind: str = "image/png") -> str:
    """``data`` inlined as a URI, so the page needs no file beside it."""
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass
class SweepSection:
    """What the page shows of one sweep; the animation and verdicts are added as found."""

    folder: str
    model: str
    strategy: str
    settings: dict[str, Any]
    summary: dict[str, Any]
    total_queries: int
    seconds: float
    grid: str
    curve: str
    patience: str = ""
    input_shape: str = ""  # C x H x W of the sweep's images
    conventions: str = ""  # the model's, as results.json records them
    white_box: bool = False
    animation: str | None = None
    animation_note: str = ""
    judges: dict[str, float] = field(default_factory=dict)
    nearest_neighbour: float | None = None
    nearest: str | None = None
    matrices: dict[str, str] = field(default_factory=dict)


@dataclass
class Sweep:
    """A sweep as read: its section of the page and its folder (kept for the replays)."""

    section: SweepSection
    folder: SweepFolder


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def sweep_section(folder: Path, root: Path, datasets: dict[str, Any]) -> Sweep:
    read = read_sweep_folder(folder, root=root)
    results, images, digits = read.results, read.images, read.digits
    settings = results["settings"]
    section = SweepSection(
        folder=_relative(folder, root),
        model=display_name(results["model"]["name"]),
        strategy=settings["strategy"],
        settings=settings,
        summary=results["summary"],
        total_queries=results["total_queries"],
        seconds=results["seconds"],
        grid=data_uri(
            figures.identikit_grid(images, digits, read.confidences, target=settings["target"])
        ),
        curve=data_uri(
            figures.convergence_curves(
                curves({settings["strategy"]: results}, threshold=settings["target"]),
                threshold=settings["target"],
                max_queries=settings["max_queries"],
                white_box=[settings["strategy"]] if is_white_box(settings["strategy"]) else [],
            )
        ),
        patience=_patience(settings),
        white_box=is_white_box(settings["strategy"]),
    )
    section.input_shape, section.conventions = recorded_input(results["model"])
    sweep = Sweep(section, read)
    judged = folder / JUDGE_FILE
    if os.path.lexists(judged):
        _verdict(sweep, judged, root, datasets)
    return sweep


def _patience(settings: dict[str, Any]) -> str:
    """The patience as results.json records it, and where it can never end a run (it is more
    than a run's budget, as comparisons set it, so that runs stop only at the target or the
    budget), that said beside it: "none" alone would hide a value the user gave."""
    patience = int(settings["patience"])
    if patience >= NO_STALLING or patience > settings["max_queries"]:
        return f"{patience:,} queries (more than a run's budget: it stopped no run)"
    return f"{patience:,} queries"


def _verdict(sweep: Sweep, judged: Path, root: Path, datasets: dict[str, Any]) -> None:
    """The judges' verdicts on a sweep, and its identikits beside their nearest real digits."""
    section, read = sweep.section, sweep.folder
    classes = int(read.results["model"]["classes"])
    verdict = read_verdict(judged.parent, classes, identikits=len(read.digits), root=root)
    section.judges = verdict["judges"]
    section.nearest_neighbour = verdict["nearest_neighbour"]
    section.matrices = {
        name: data_uri(figures.transfer_matrix(matrix, judge=name))
        for name, matrix in verdict["transfer_matrices"].items()
    }
    dataset, indices = verdict.get("dataset"), verdict.get("nearest_index")
    if dataset is None or indices is None:
        return  # judged before identikit recorded the nearest digits
    training = _training_set(dataset, datasets)
    if training is None:
        return
    train_images, train_labels = training
    if max(indices, default=0) >= len(train_images):
        Fields(judged).fail("nearest_index", f"points past the {len(train_images)} images")
    section.nearest = data_uri(
        figures.nearest_pairs(
            read.images,
            read.digits.tolist(),
            train_images[indices].astype(np.float32) / 255,
            train_labels[indices].tolist(),
        )
    )


def _training_set(name: str, loaded: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The training split of a registered dataset whose files are already here; None otherwise.

    A verdict may name any dataset: only a registered one is read (an ``idx:DIR`` could point
    anywhere), from where identikit keeps its data, and nothing is fetched for a report.
    """
    if name not in loaded:
        loaded[name] = None
        spec = DATASETS.get(name)
        if spec is not None and all(
            find_file(spec, file, default_root()) for file in spec.files["train"]
        ):
            # Damaged files: the page goes without the pairs, as it does without the files.
            with contextlib.suppress(IdentikitError):
                loaded[name] = load_dataset(name, "train")
    found: tuple[np.ndarray, np.ndarray] | None = loaded[name]
    return found


def _picture(path: Path, root: Path) -> str | None:
    """A PNG beside a result, inlined; None when absent. Only a regular PNG file inside
    ``root`` is read: a link to a secret file never ends up in the page."""
    if not os.path.lexists(path):
        return None
    data = read_regular(path, root=root)
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise IdentikitError(f"{path} is not a PNG image")
    return data_uri(data)


def _within(folder: str, parent: str) -> bool:
    """Whether the relative folder ``folder`` is ``parent`` or lies below it."""
    return parent == "." or folder == parent or folder.startswith(parent.rstrip("/") + "/")


def summary_section(sweeps: Sequence[Sweep]) -> dict[str, Any] | None:
    """The page's opening summary: one row per judged sweep, its first identikit of every class
    side by side, whether it read any data, its judges' and the nearest image's agreement, and
    a sentence of what they show; and one sentence that compares the rows. None where no sweep
    was judged."""
    rows: list[dict[str, Any]] = []
    for sweep in sweeps:
        section, read = sweep.section, sweep.folder
        if not section.judges:
            continue
        digits = read.digits.tolist()
        first = [digits.index(d) for d in sorted(set(digits))]
        agreement = sum(section.judges.values()) / len(section.judges)
        uses_data = read.results.get("uses_data")  # None: recorded before it was
        rows.append(
            {
                "folder": section.folder,
                "strategy": section.strategy,
                "model": section.model,
                "uses_data": uses_data,
                "strip": data_uri(figures.identikit_strip([read.images[i] for i in first])),
                "judges": section.judges,
                "nearest_neighbour": section.nearest_neighbour,
                "agreement": agreement,
                "sentence": _row_sentence(section, agreement, uses_data),
            }
        )
    if not rows:
        return None
    best = max(rows, key=lambda row: float(row["agreement"]))
    worst = min(rows, key=lambda row: float(row["agreement"]))
    headline = (
        f"Judges that never saw {best['model']}'s searches agree most with {best['strategy']} "
        f"({best['agreement']:.0%} on average)"
        + (
            f" and least with {worst['strategy']} ({worst['agreement']:.0%})."
            if worst is not best
            else "."
        )
    )
    return {"rows": rows, "headline": headline}


def _row_sentence(section: SweepSection, agreement: float, uses_data: bool | None) -> str:
    """What one summary row shows, in words."""
    low, high = min(section.judges.values()), max(section.judges.values())
    judged = (
        f"the independent judges call {low:.0%} of them their class"
        if low == high
        else f"the independent judges call {low:.0%} to {high:.0%} of them their class"
    )
    source = {True: "learnt from data", False: "drawn from the model alone", None: "drawn"}[
        uses_data
    ]
    sentence = f"Identikits {source}: {judged}"
    if section.nearest_neighbour is not None:
        sentence += (
            f", and the nearest real image is of their class for {section.nearest_neighbour:.0%}"
        )
    return sentence + "."


def certainty_section(path: Path, root: Path, sweeps: Sequence[Sweep]) -> dict[str, Any]:
    """A certainty record and its histogram. ``certainty.json`` does not name its model, so the
    page names one only where every sweep in the same folder used the same model, and says that
    this is how it knows."""
    folder = _relative(path.parent, root)
    models = {s.section.model for s in sweeps if _within(s.section.folder, folder)}
    return {
        "folder": folder,
        "model": models.pop() if len(models) == 1 else None,
        "rows": read_certainty(path.parent, root=root),
        "histogram": _picture(path.with_suffix(".png"), root),
    }


def comparison_section(path: Path, root: Path, thresholds: list[str]) -> dict[str, Any]:
    rows = read_comparison(path.parent, thresholds, root=root)
    for name, row in rows.items():
        row["white_box"] = is_white_box(name)
    return {
        "folder": _relative(path.parent, root),
        "rows": rows,
        "curves": _picture(path.parent / "curves.png", root),
    }


def ceiling_section(path: Path, root: Path) -> dict[str, Any]:
    record = read_ceiling(path.parent, root=root)
    return {
        "folder": _relative(path.parent, root),
        "model": display_name(record["model"]["name"]),
        "sha256": record["model"]["sha256"],
        "classes": record["classes"],
        "picture": _picture(path.with_suffix(".png"), root),
    }
