"""The report: one self-contained HTML page from everything a folder of results holds.

``build_report(DIR)`` finds every sweep (``results.json`` + ``identikits.npz``), certainty
measurement (``certainty.json``), strategy comparison (``compare.json``) and judge verdict
(``judge.json``) under DIR, makes the figures, and renders ``templates/report.html`` with
Jinja2. Images are inlined as data URIs, so the page works offline and travels as one file.

A results folder may come from anyone, so nothing in it is trusted: every file is read through
its validating reader (:mod:`identikit.records`), only regular files inside the folder are read
(a link that leads out is refused), and no model is loaded on the folder's say-so: model cards
come from what the sweep recorded, and animations are replayed only with model files the user
names (``identikit report DIR --model FILE``), matched by the hash of their content.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from identikit.atomic import atomic_write_text
from identikit.classifier import load_classifier
from identikit.compare import THRESHOLDS, curves
from identikit.errors import IdentikitError
from identikit.limits import MODEL_BYTES
from identikit.models import ARCHITECTURES
from identikit.records import (
    IDENTIKITS_FILE,
    RESULTS_FILE,
    check_certainty,
    check_compare,
    check_judge,
    read_identikits,
    read_results,
)
from identikit.report import figures
from identikit.report.replay import replay_first_runs
from identikit.safe_files import display_name, read_json, read_regular


def data_uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass
class ModelCard:
    name: str
    path: str
    sha256: str
    architecture: str = "unknown"
    description: str = ""
    parameters: int | None = None
    test_accuracy: float | None = None
    epochs: int | None = None
    seed: int | None = None


@dataclass
class SweepSection:
    folder: str
    model: str
    strategy: str
    settings: dict[str, Any]
    summary: dict[str, Any]
    total_queries: int
    seconds: float
    grid: str
    curve: str
    animation: str | None = None
    animation_note: str = ""
    judges: dict[str, float] = field(default_factory=dict)
    nearest_neighbour: float | None = None
    matrices: dict[str, str] = field(default_factory=dict)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _model_card(record: dict[str, Any]) -> ModelCard:
    """A model's card from what its sweep recorded: no model file is opened on a results
    folder's say-so (a folder can name any path)."""
    card = ModelCard(
        name=display_name(record["name"]),
        path=str(record.get("path") or ""),
        sha256=record.get("sha256") or "",
    )
    facts = record.get("card") or {}
    card.architecture = str(facts.get("architecture") or "unknown")
    spec = ARCHITECTURES.get(card.architecture)
    card.description = spec.description if spec else ""
    card.parameters = facts.get("parameters")
    card.test_accuracy = facts.get("test_accuracy")
    card.epochs, card.seed = facts.get("epochs"), facts.get("seed")
    return card


@dataclass(frozen=True)
class Replayer:
    """Model files the user named for replaying animations, by the hash of their content."""

    paths: dict[str, Path]  # sha256 -> file
    trust_code: bool = False

    @classmethod
    def of(cls, models: Sequence[Path], *, trust_code: bool = False) -> Replayer:
        paths = {}
        for path in models:
            paths[hashlib.sha256(read_regular(path, limit=MODEL_BYTES)).hexdigest()] = path
        return cls(paths, trust_code)


def _animation(
    section: SweepSection, results: dict[str, Any], images: np.ndarray, replayer: Replayer
) -> None:
    path = replayer.paths.get(results["model"].get("sha256") or "")
    if path is None:
        section.animation_note = (
            "no animation: name the sweep's model file with --model to replay its runs"
            if replayer.paths
            else ""
        )
        return
    try:
        # The engine, chunk size and precision the sweep scored with: another engine's last
        # bits could rank two candidates the other way and so replay another search.
        scoring = results.get("scoring") or {}
        classifier = load_classifier(
            path,
            device="cpu",
            backend=scoring.get("backend"),
            chunk_size=scoring.get("chunk_size"),
            precision=scoring.get("precision", "fp32"),
            trust_code=replayer.trust_code,
        )
        if classifier.sha256 != results["model"].get("sha256"):
            raise IdentikitError(f"{path} changed while the report was made")
        replays = replay_first_runs(classifier, results, images)
    except IdentikitError as exc:
        section.animation_note = f"no animation: {exc}"
        return
    section.animation = data_uri(
        figures.animation_gif([r.frames for r in replays], [str(r.digit) for r in replays]),
        "image/gif",
    )
    unfaithful = ", ".join(str(r.digit) for r in replays if not r.faithful)
    section.animation_note = (
        "run 0 of each digit, replayed from its seed: it ends on the identikit shown above"
        if not unfaithful
        else f"run 0 of each digit, replayed from its seed; for digit(s) {unfaithful} the "
        "replay took another path (the model's arithmetic differs in the last bits by batch)"
    )


def _sweep(
    folder: Path, root: Path, replayer: Replayer | None
) -> tuple[SweepSection, dict[str, Any]]:
    results = read_results(folder, root=root)
    images, digits = read_identikits(folder, results, root=root)
    settings = results["settings"]
    confidences = [r["confidence"] for r in results["runs"]]
    section = SweepSection(
        folder=_relative(folder, root),
        model=display_name(results["model"]["name"]),
        strategy=settings["strategy"],
        settings=settings,
        summary=results["summary"],
        total_queries=results["total_queries"],
        seconds=results["seconds"],
        grid=data_uri(
            figures.identikit_grid(images, digits, confidences, target=settings["target"])
        ),
        curve=data_uri(
            figures.convergence_curves(
                curves({settings["strategy"]: results}, threshold=settings["target"]),
                threshold=settings["target"],
                max_queries=settings["max_queries"],
            )
        ),
    )
    if replayer is not None:
        _animation(section, results, images, replayer)
    judged = folder / "judge.json"
    if os.path.lexists(judged):
        verdict = check_judge(
            read_json(judged, root=root), judged, int(results["model"]["classes"])
        )
        section.judges = verdict["judges"]
        section.nearest_neighbour = verdict["nearest_neighbour"]
        section.matrices = {
            name: data_uri(figures.transfer_matrix(matrix, judge=name))
            for name, matrix in verdict["transfer_matrices"].items()
        }
    return section, results


def _files(root: Path, name: str) -> list[Path]:
    """Every ``name`` under ``root``, without following links to folders (which could lead
    anywhere, or round in circles)."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        if name in files:
            found.append(Path(folder) / name)
    return sorted(found)


def _picture(path: Path, root: Path) -> str | None:
    """A PNG beside a result, inlined; None when absent. Only a regular PNG file inside
    ``root`` is read: a link to a secret file never ends up in the page."""
    if not os.path.lexists(path):
        return None
    data = read_regular(path, root=root)
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise IdentikitError(f"{path} is not a PNG image")
    return data_uri(data)


def collect(
    root: Path, *, animate: bool = True, replayer: Replayer | None = None
) -> dict[str, Any]:
    """Everything the page shows, from the files under ``root``.

    Animations are replayed only with the model files of ``replayer`` (the ones the user
    named), matched to sweeps by the hash of their content.
    """
    sweep_folders = [
        p.parent for p in _files(root, RESULTS_FILE) if os.path.lexists(p.parent / IDENTIKITS_FILE)
    ]
    if not sweep_folders:
        raise IdentikitError(f"{root} holds no finished sweep (results.json + identikits.npz)")
    sweeps, models = [], {}
    for folder in sweep_folders:
        section, results = _sweep(folder, root, replayer if animate else None)
        sweeps.append(section)
        record = results["model"]
        key = record.get("sha256") or record.get("name")
        if key not in models:
            models[key] = _model_card(record)
    certainty = [
        {
            "folder": _relative(path.parent, root),
            "rows": check_certainty(read_json(path, root=root), path),
            "histogram": _picture(path.with_suffix(".png"), root),
        }
        for path in _files(root, "certainty.json")
    ]
    thresholds = [str(t) for t in THRESHOLDS]
    comparisons = [
        {
            "folder": _relative(path.parent, root),
            "rows": check_compare(read_json(path, root=root), path, thresholds),
            "curves": _picture(path.parent / "curves.png", root),
        }
        for path in _files(root, "compare.json")
    ]
    return {
        "title": f"identikit report: {display_name(root.resolve())}",
        "models": list(models.values()),
        "sweeps": sweeps,
        "certainty": certainty,
        "comparisons": comparisons,
        "thresholds": thresholds,
    }


def render(context: dict[str, Any]) -> str:
    environment = Environment(
        loader=PackageLoader("identikit.report", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    return environment.get_template("report.html").render(**context)


def build_report(
    folder: str | os.PathLike[str],
    *,
    animate: bool = True,
    models: Sequence[Path] = (),
    trust_code: bool = False,
) -> Path:
    """Write ``folder/report.html`` atomically and return its path.

    ``models`` are the model files whose sweeps get animations (replayed from their seeds);
    without them the page has none: a results folder never chooses what code runs.
    """
    root = Path(folder)
    if not root.is_dir():
        raise IdentikitError(f"{root} is not a folder")
    replayer = Replayer.of(models, trust_code=trust_code) if animate and models else None
    out = root / "report.html"
    atomic_write_text(out, render(collect(root, animate=animate, replayer=replayer)))
    return out
