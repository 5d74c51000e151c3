"""The sections of the report page, one per kind of result, each read from its files.

Every file goes through its validating reader (:mod:`identikit.sweeps.folder` for sweeps,
:mod:`identikit.sweeps.result_files` for the other records), inside the report's folder only,
and becomes what the page template shows: figures inlined as data URIs, numbers as read.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from identikit.base import figures
from identikit.base.analysis import class_diversity
from identikit.base.errors import IdentikitError
from identikit.base.safe_files import display_name, read_json, read_regular
from identikit.data.datasets import DATASETS, default_root, find_file
from identikit.data.images import load_images
from identikit.reports.cards import recorded_input
from identikit.reports.classes import ClassNaming, reached
from identikit.reports.judges import JudgeInfo, column_notes, dataset_label, judge_info
from identikit.strategies.registry import is_white_box
from identikit.sweeps.compare import NO_STALLING, curves
from identikit.sweeps.folder import SweepFolder, read_sweep_folder
from identikit.sweeps.reconstruction import convergence_measure
from identikit.sweeps.records import Fields
from identikit.sweeps.result_files import (
    JUDGE_FILE,
    check_judge,
    read_ceiling,
    read_certainty,
    read_comparison,
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
    naming: ClassNaming = field(default_factory=ClassNaming)
    model_key: str = ""  # the model's SHA-256 (its name where none was recorded)
    # The confidence a run must reach to count as converged here, and the rows of the
    # convergence table: per class its label, its recorded row and its runs at the measure.
    measure: float = 0.99
    measured: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    animation: str | None = None
    animation_note: str = ""
    judges: dict[str, float] = field(default_factory=dict)
    judge_info: dict[str, JudgeInfo] = field(default_factory=dict)
    nearest_neighbour: float | None = None
    nearest: str | None = None
    nearest_note: str = ""  # why a judged sweep has no nearest-image pairs
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
    naming = ClassNaming.of_results(results)
    measure = convergence_measure(settings)
    section = SweepSection(
        folder=_relative(folder, root),
        model=display_name(results["model"]["name"]),
        strategy=settings["strategy"],
        settings=settings,
        summary=results["summary"],
        total_queries=results["total_queries"],
        seconds=results["seconds"],
        # Coloured by the measure, not the stopping target: a reconstruction stops at 0.9999
        # but its run at 0.998 has converged by the README's measure (0.99).
        grid=data_uri(
            figures.identikit_grid(
                images, digits, read.confidences, target=measure, names=naming.names
            )
        ),
        curve=data_uri(
            figures.convergence_curves(
                curves({settings["strategy"]: results}, threshold=measure),
                threshold=measure,
                max_queries=settings["max_queries"],
                white_box=[settings["strategy"]] if is_white_box(settings["strategy"]) else [],
            )
        ),
        patience=_patience(settings),
        white_box=is_white_box(settings["strategy"]),
        naming=naming,
        model_key=results["model"].get("sha256") or results["model"]["name"],
        measure=measure,
    )
    section.rows, section.measured = _convergence(results, naming, measure)
    spread = class_diversity(images, digits)
    for line, digit in zip(section.rows, results["summary"], strict=True):
        line["diversity"] = spread.get(int(digit))
    section.input_shape, section.conventions = recorded_input(results["model"])
    sweep = Sweep(section, read)
    judged = folder / JUDGE_FILE
    if os.path.lexists(judged):
        _verdict(sweep, judged, root, datasets)
    return sweep


def _convergence(
    results: dict[str, Any], naming: ClassNaming, measure: float
) -> tuple[list[dict[str, Any]], str]:
    """The convergence table's rows (each class by name, with its runs at ``measure``) and
    the sentence that counts the runs at the measure and says which measure it is."""
    runs = results["runs"]
    rows = [
        {
            "label": naming.numbered(int(digit)),
            "row": row,
            "reached": reached(
                (r["confidence"] for r in runs if r["digit"] == int(digit)), measure
            ),
        }
        for digit, row in results["summary"].items()
    ]
    target = float(results["settings"]["target"])
    which = (
        f"the measure of a reconstruction, which stops drawing at {target}"
        if measure != target
        else "the sweep's target"
    )
    total = reached((r["confidence"] for r in runs), measure)
    return rows, f"{total} of {len(runs)} runs reached {measure} ({which})"


def _patience(settings: dict[str, Any]) -> str:
    """The patience as results.json records it, and where it can never end a run (it is more
    than a run's budget, as comparisons set it, so that runs stop only at the target or the
    budget), that said beside it: "none" alone would hide a value the user gave."""
    patience = int(settings["patience"])
    if patience >= NO_STALLING or patience > settings["max_queries"]:
        return f"{patience:,} queries (more than a run's budget: it stopped no run)"
    return f"{patience:,} queries"


def _verdict(sweep: Sweep, judged: Path, root: Path, datasets: dict[str, Any]) -> None:
    """The judges' verdicts on a sweep (each judge's own accuracy where recorded), and its
    identikits beside their nearest real images, or why they are not shown."""
    section, read = sweep.section, sweep.folder
    classes = int(read.results["model"]["classes"])
    raw = read_json(judged, root=root)
    verdict = check_judge(raw, judged, classes, identikits=len(read.digits))
    section.judges = verdict["judges"]
    section.judge_info = judge_info(verdict.get("judge_info", raw.get("judge_info")), judged)
    section.nearest_neighbour = verdict["nearest_neighbour"]
    naming = section.naming
    if not naming.names and verdict.get("class_names"):  # names the verdict alone recorded
        naming = ClassNaming(tuple(verdict["class_names"]), naming.digits)
    section.matrices = {
        name: data_uri(
            figures.transfer_matrix(matrix, judge=name, names=naming.names, noun=naming.noun)
        )
        for name, matrix in verdict["transfer_matrices"].items()
    }
    dataset, indices = verdict.get("dataset"), verdict.get("nearest_index")
    if dataset is None or indices is None:
        section.nearest_note = (
            "No nearest-image pairs: this sweep was judged before identikit recorded which "
            "training images are nearest (judge it again to see them)."
        )
        return
    training = _training_set(dataset, datasets)
    if isinstance(training, str):
        section.nearest_note = f"No nearest-image pairs: {training}."
        return
    train_images, train_labels = training
    if max(indices, default=0) >= len(train_images):
        Fields(judged).fail("nearest_index", f"points past the {len(train_images)} images")
    real = train_images[indices].astype(np.float32) / 255
    if real.shape[1:] != read.images.shape[1:]:
        section.nearest_note = (
            f"No nearest-image pairs: the images of {dataset_label(dataset)} here are "
            f"{_dims(real.shape[1:])}, the identikits {_dims(read.images.shape[1:])}."
        )
        return
    section.nearest = data_uri(
        figures.nearest_pairs(
            read.images,
            read.digits.tolist(),
            real,
            train_labels[indices].tolist(),
            names=naming.names,
        )
    )


def _dims(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape)


# Datasets made here from a seed or a package, never from a file a verdict names: a report
# reads them to show the nearest images.
_MADE_HERE = ("sklearn-digits", "shapes")


def _training_set(name: str, loaded: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | str:
    """The training split of a dataset the report may read, images as the sweeps keep them
    ((N, H, W) grey, (N, C, H, W) otherwise); else why it is not read, in words.

    A verdict may name any dataset: only a registered one whose files are already where
    identikit keeps its data is read (an ``idx:DIR`` or ``npz:FILE`` could point anywhere),
    or one made here (``shapes``, ``sklearn-digits``); nothing is fetched for a report.
    """
    if name not in loaded:
        loaded[name] = _read_training_set(name)
    found: tuple[np.ndarray, np.ndarray] | str = loaded[name]
    return found


def _read_training_set(name: str) -> tuple[np.ndarray, np.ndarray] | str:
    shown = dataset_label(name)
    spec = DATASETS.get(name)
    if spec is not None:
        if not all(find_file(spec, file, default_root()) for file in spec.files["train"]):
            return f"the dataset {shown} is not in {default_root()} (a report fetches nothing)"
    elif name.partition(":")[0] not in _MADE_HERE:
        return (
            f"the verdict's dataset {shown} is a file or folder, and a report reads no file "
            "that a results folder names"
        )
    try:
        images = load_images(name)
    except IdentikitError as exc:  # damaged files, or a data-free session
        return f"the dataset {shown} cannot be read here ({exc})"
    train, labels = images.train_images, images.train_labels
    return (train[:, 0] if train.shape[1] == 1 else train), labels


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
    """The page's opening summary, one group per model (sweeps of different models are never
    compared in one sentence): one row per judged sweep, its first identikit of every class
    side by side, whether it read any data, every judge's agreement (a column for each judge
    that judged any sweep, with its own accuracy where recorded) and the nearest image's, a
    sentence of what they show; and per model one sentence that compares its rows. None where
    no sweep was judged."""
    judged = [sweep for sweep in sweeps if sweep.section.judges]
    if not judged:
        return None
    judges = list(dict.fromkeys(name for s in judged for name in s.section.judges))
    groups: dict[str, list[dict[str, Any]]] = {}
    for sweep in judged:
        groups.setdefault(sweep.section.model_key, []).append(_summary_row(sweep))
    return {
        "judges": judges,
        "notes": column_notes(judges, [s.section.judge_info for s in judged]),
        "groups": [
            {
                "model": rows[0]["model"],
                "sha256": key[:12] if key != rows[0]["model"] else "",
                "rows": rows,
                "headline": _headline(rows),
            }
            for key, rows in groups.items()
        ],
    }


def _summary_row(sweep: Sweep) -> dict[str, Any]:
    """One judged sweep's row of the summary."""
    section, read = sweep.section, sweep.folder
    digits = read.digits.tolist()
    classes = sorted(set(digits))
    first = [digits.index(d) for d in classes]
    labels = section.naming.labels(classes)
    agreement = sum(section.judges.values()) / len(section.judges)
    uses_data = read.results.get("uses_data")  # None: recorded before it was
    return {
        "folder": section.folder,
        "strategy": section.strategy,
        "model": section.model,
        "uses_data": uses_data,
        "strip": data_uri(figures.identikit_strip([read.images[i] for i in first], labels=labels)),
        "classes": ", ".join(labels),
        "judges": section.judges,
        "nearest_neighbour": section.nearest_neighbour,
        "agreement": agreement,
        "sentence": _row_sentence(section, agreement, uses_data),
    }


def _headline(rows: Sequence[dict[str, Any]]) -> str:
    """One sentence comparing the sweeps of one model by their judges' mean agreement."""
    best = max(rows, key=lambda row: float(row["agreement"]))
    worst = min(rows, key=lambda row: float(row["agreement"]))
    opening = f"Judges that never saw {best['model']}'s searches"
    if len(rows) == 1:
        return (
            f"{opening} call {best['agreement']:.0%} of its {best['strategy']} identikits "
            "their class (on average)."
        )
    if best["agreement"] == worst["agreement"]:
        return (
            f"{opening} agree as much with each of its {len(rows)} sweeps "
            f"({best['agreement']:.0%} on average)."
        )
    # A strategy swept twice (two folders) is named by its folder too.
    strategies = [row["strategy"] for row in rows]

    def named(row: dict[str, Any]) -> str:
        repeated = strategies.count(row["strategy"]) > 1
        return f"{row['strategy']} ({row['folder']})" if repeated else str(row["strategy"])

    return (
        f"{opening} agree most with {named(best)} ({best['agreement']:.0%} on average) "
        f"and least with {named(worst)} ({worst['agreement']:.0%})."
    )


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
