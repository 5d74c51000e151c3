"""The report: one self-contained HTML page from everything a folder of results holds.

``build_report(DIR)`` finds every sweep (``results.json`` + ``identikits.npz``), certainty
measurement (``certainty.json``), strategy comparison (``compare.json``) and judge verdict
(``judge.json``) under DIR, makes the figures, and renders ``templates/report.html`` with
Jinja2. Images are inlined as data URIs, so the page works offline and travels as one file.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from identikit.atomic import atomic_write_text
from identikit.classifier import load_classifier
from identikit.compare import THRESHOLDS, curves
from identikit.errors import IdentikitError
from identikit.models import ARCHITECTURES
from identikit.models.checkpoint import file_sha256, load_checkpoint
from identikit.report import figures
from identikit.report.replay import replay_first_runs


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


def _model_card(path: Path, sha256: str | None) -> ModelCard:
    card = ModelCard(name=path.name, path=str(path), sha256=sha256 or "")
    if not path.is_file() or (sha256 and file_sha256(path) != sha256):
        card.description = "model file not found (or changed since the sweep)"
        return card
    try:
        model, meta = load_checkpoint(path)
    except IdentikitError:
        card.description = "not an identikit checkpoint (TorchScript or ONNX)"
        return card
    card.architecture = meta["architecture"]
    spec = ARCHITECTURES.get(card.architecture)
    card.description = spec.description if spec else ""
    card.parameters = sum(p.numel() for p in model.parameters())
    card.test_accuracy = meta.get("test_accuracy")
    card.epochs, card.seed = meta.get("epochs"), meta.get("seed")
    return card


def _animation(section: SweepSection, results: dict[str, Any], images: np.ndarray) -> None:
    path = Path(results["model"].get("path") or "")
    if not path.is_file() or file_sha256(path) != results["model"].get("sha256"):
        section.animation_note = "no animation: the model file is not where the sweep found it"
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
        )
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


def _sweep(folder: Path, root: Path, animate: bool) -> SweepSection:
    results = json.loads((folder / "results.json").read_text())
    with np.load(folder / "identikits.npz", allow_pickle=False) as npz:
        images, digits = npz["images"], npz["digits"]
    settings = results["settings"]
    confidences = [r["confidence"] for r in results["runs"]]
    section = SweepSection(
        folder=_relative(folder, root),
        model=results["model"]["name"],
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
    if animate:
        _animation(section, results, images)
    judged = folder / "judge.json"
    if judged.is_file():
        verdict = json.loads(judged.read_text())
        section.judges = verdict.get("judges", {})
        section.nearest_neighbour = verdict.get("nearest_neighbour")
        section.matrices = {
            name: data_uri(figures.transfer_matrix(matrix, judge=name))
            for name, matrix in verdict.get("transfer_matrices", {}).items()
        }
    return section


def collect(root: Path, *, animate: bool = True) -> dict[str, Any]:
    """Everything the page shows, from the files under ``root``."""
    sweep_folders = sorted(
        p.parent for p in root.rglob("results.json") if (p.parent / "identikits.npz").is_file()
    )
    if not sweep_folders:
        raise IdentikitError(f"{root} holds no finished sweep (results.json + identikits.npz)")
    sweeps = [_sweep(folder, root, animate) for folder in sweep_folders]
    models: dict[str, ModelCard] = {}
    for folder in sweep_folders:
        record = json.loads((folder / "results.json").read_text())["model"]
        key = record.get("sha256") or record.get("name")
        if key not in models:
            models[key] = _model_card(Path(record.get("path") or ""), record.get("sha256"))
    certainty = []
    for path in sorted(root.rglob("certainty.json")):
        picture = path.with_suffix(".png")
        certainty.append(
            {
                "folder": _relative(path.parent, root),
                "rows": json.loads(path.read_text()),
                "histogram": data_uri(picture.read_bytes()) if picture.is_file() else None,
            }
        )
    comparisons = []
    for path in sorted(root.rglob("compare.json")):
        picture = path.parent / "curves.png"
        comparisons.append(
            {
                "folder": _relative(path.parent, root),
                "rows": json.loads(path.read_text()),
                "curves": data_uri(picture.read_bytes()) if picture.is_file() else None,
            }
        )
    return {
        "title": f"identikit report: {root.resolve().name}",
        "models": list(models.values()),
        "sweeps": sweeps,
        "certainty": certainty,
        "comparisons": comparisons,
        "thresholds": [str(t) for t in THRESHOLDS],
    }


def render(context: dict[str, Any]) -> str:
    environment = Environment(
        loader=PackageLoader("identikit.report", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    return environment.get_template("report.html").render(**context)


def build_report(folder: str | os.PathLike[str], *, animate: bool = True) -> Path:
    """Write ``folder/report.html`` atomically and return its path."""
    root = Path(folder)
    if not root.is_dir():
        raise IdentikitError(f"{root} is not a folder")
    out = root / "report.html"
    atomic_write_text(out, render(collect(root, animate=animate)))
    return out
