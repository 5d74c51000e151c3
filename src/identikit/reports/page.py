"""The report: one self-contained HTML page from everything a folder of results holds.

``build_report(DIR)`` finds every sweep (``results.json`` + ``identikits.npz``), certainty
measurement (``certainty.json``), strategy comparison (``compare.json``), exact ceiling
(``ceiling.json``), judge verdict (``judge.json``) and identikit checkpoint (``*.pt``,
``*.pth``) under DIR, makes the figures, and renders ``templates/report.html`` with Jinja2.
Any of them may be missing; a folder with no results at all is refused. Images are inlined as
data URIs, so the page works offline and travels as one file.

A results folder may come from anyone, so nothing in it is trusted: every file is read through
its validating reader (:mod:`identikit.sweeps.records`), only regular files inside the folder
are read (a link that leads out is refused), and no model is loaded on the folder's say-so:
model cards come from what the results recorded and from checkpoints read as plain weights
(:mod:`identikit.reports.cards`), and animations are replayed only with model files the user
names (``identikit report DIR --model FILE``), matched by the hash of their content.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from identikit.base import figures
from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.limits import MODEL_BYTES
from identikit.base.safe_files import display_name, read_json, read_regular
from identikit.classifier.classifier import load_classifier
from identikit.data.datasets import DATASETS, default_root, find_file, load_dataset
from identikit.reports.cards import Cards, card_of_record
from identikit.reports.replay import REPLAY_ITERATIONS, Replay, replay_first_runs
from identikit.strategies.registry import is_white_box
from identikit.sweeps.compare import NO_STALLING, THRESHOLDS, curves
from identikit.sweeps.records import (
    CEILING_FILE,
    IDENTIKITS_FILE,
    RESULTS_FILE,
    Fields,
    check_certainty,
    check_compare,
    check_judge,
    read_ceiling,
    read_identikits,
    read_results,
)

Log = Callable[[str], None]


def data_uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


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
    patience: str = ""
    white_box: bool = False
    animation: str | None = None
    animation_note: str = ""
    judges: dict[str, float] = field(default_factory=dict)
    nearest_neighbour: float | None = None
    nearest: str | None = None
    matrices: dict[str, str] = field(default_factory=dict)


@dataclass
class Sweep:
    """A sweep as read: its section of the page and what made it (kept for the replays)."""

    path: Path
    section: SweepSection
    results: dict[str, Any]
    images: np.ndarray
    digits: np.ndarray


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


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


def _animation(sweep: Sweep, replayer: Replayer, *, progress: bool) -> None:
    section, results = sweep.section, sweep.results
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
        replays = replay_first_runs(classifier, results, sweep.images, progress=progress)
    except IdentikitError as exc:
        section.animation_note = f"no animation: {exc}"
        return
    section.animation = data_uri(
        figures.animation_gif(
            [r.frames for r in replays],
            [str(r.digit) for r in replays],
            confidences=[r.confidences for r in replays],
        ),
        "image/gif",
    )
    section.animation_note = _replay_note(replays)


def _replay_note(replays: Sequence[Replay]) -> str:
    """What the animation shows, and where a replay did not end on the recorded identikit."""
    note = "run 0 of each digit, replayed from its seed, with its best confidence so far"
    cut = ", ".join(str(r.digit) for r in replays if not r.complete)
    unfaithful = ", ".join(str(r.digit) for r in replays if r.complete and not r.faithful)
    if not cut and not unfaithful:
        return f"{note}: it ends on the identikit shown above"
    if cut:
        note += f"; for digit(s) {cut} only the first {REPLAY_ITERATIONS} iterations"
    if unfaithful:
        note += (
            f"; for digit(s) {unfaithful} the replay took another path (the model's "
            "arithmetic differs in the last bits by batch)"
        )
    return note


def _sweep(folder: Path, root: Path, datasets: dict[str, Any]) -> Sweep:
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
                white_box=[settings["strategy"]] if is_white_box(settings["strategy"]) else [],
            )
        ),
        patience=_patience(settings),
        white_box=is_white_box(settings["strategy"]),
    )
    sweep = Sweep(folder, section, results, images, digits)
    judged = folder / "judge.json"
    if os.path.lexists(judged):
        _verdict(sweep, judged, root, datasets)
    return sweep


def _patience(settings: dict[str, Any]) -> str:
    """The patience as the page shows it: "none" where it can never end a run (comparisons
    set it past every budget, so that runs stop only at the target or the budget)."""
    patience = int(settings["patience"])
    never = patience >= NO_STALLING or patience > settings["max_queries"]
    return "none" if never else f"{patience:,}"


def _verdict(sweep: Sweep, judged: Path, root: Path, datasets: dict[str, Any]) -> None:
    """The judges' verdicts on a sweep, and its identikits beside their nearest real digits."""
    section = sweep.section
    verdict = check_judge(
        read_json(judged, root=root),
        judged,
        int(sweep.results["model"]["classes"]),
        identikits=len(sweep.digits),
    )
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
            sweep.images,
            sweep.digits.tolist(),
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


def _within(folder: str, parent: str) -> bool:
    """Whether the relative folder ``folder`` is ``parent`` or lies below it."""
    return parent == "." or folder == parent or folder.startswith(parent.rstrip("/") + "/")


def _certainty(path: Path, root: Path, sweeps: Sequence[Sweep]) -> dict[str, Any]:
    """A certainty record and its histogram. ``certainty.json`` does not name its model, so the
    page names one only where every sweep in the same folder used the same model, and says that
    this is how it knows."""
    folder = _relative(path.parent, root)
    models = {s.section.model for s in sweeps if _within(s.section.folder, folder)}
    return {
        "folder": folder,
        "model": models.pop() if len(models) == 1 else None,
        "rows": check_certainty(read_json(path, root=root), path),
        "histogram": _picture(path.with_suffix(".png"), root),
    }


def _comparison(path: Path, root: Path, thresholds: list[str]) -> dict[str, Any]:
    rows = check_compare(read_json(path, root=root), path, thresholds)
    for name, row in rows.items():
        row["white_box"] = is_white_box(name)
    return {
        "folder": _relative(path.parent, root),
        "rows": rows,
        "curves": _picture(path.parent / "curves.png", root),
    }


def _ceiling(path: Path, root: Path) -> dict[str, Any]:
    record = read_ceiling(path.parent, root=root)
    return {
        "folder": _relative(path.parent, root),
        "model": display_name(record["model"]["name"]),
        "sha256": record["model"]["sha256"],
        "classes": record["classes"],
        "picture": _picture(path.with_suffix(".png"), root),
    }


def _model_cards(root: Path, sweeps: Sequence[Sweep], ceilings: Sequence[dict[str, Any]]) -> Cards:
    """One card per model: from the sweeps' records, merged with the checkpoint files found
    under ``root`` and the models of the ceilings, all by SHA-256."""
    cards = Cards()
    for sweep in sweeps:
        cards.add(card_of_record(sweep.results["model"]), used_by=sweep.section.folder)
    cards.add_files(root)
    for ceiling in ceilings:
        record = {"name": ceiling["model"], "sha256": ceiling["sha256"]}
        cards.add(card_of_record(record), used_by=ceiling["folder"])
    return cards


def collect(
    root: Path,
    *,
    animate: bool = True,
    replayer: Replayer | None = None,
    log: Log | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Everything the page shows, from the files under ``root``.

    Every file is read and checked before any animation is replayed, so a damaged file is
    refused at once, not after minutes of replays. Animations are replayed only with the model
    files of ``replayer`` (the ones the user named), matched to sweeps by the hash of their
    content; ``log`` hears a line per sweep replayed, and ``progress`` shows a bar.
    """
    datasets: dict[str, Any] = {}
    sweeps = [
        _sweep(p.parent, root, datasets)
        for p in _files(root, RESULTS_FILE)
        if os.path.lexists(p.parent / IDENTIKITS_FILE)
    ]
    thresholds = [str(t) for t in THRESHOLDS]
    certainty = [_certainty(p, root, sweeps) for p in _files(root, "certainty.json")]
    comparisons = [_comparison(p, root, thresholds) for p in _files(root, "compare.json")]
    ceilings = [_ceiling(p, root) for p in _files(root, CEILING_FILE)]
    if not (sweeps or certainty or comparisons or ceilings):
        raise IdentikitError(
            f"{root} holds no results: no finished sweep (results.json + identikits.npz), "
            "certainty.json, compare.json or ceiling.json"
        )
    cards = _model_cards(root, sweeps, ceilings)
    if animate and replayer is not None:
        _replay_all(sweeps, replayer, root, log=log, progress=progress)
    return {
        "title": f"identikit report: {display_name(root.resolve())}",
        "models": list(cards.cards.values()),
        "skipped_models": cards.skipped,
        "sweeps": [s.section for s in sweeps],
        "certainty": certainty,
        "comparisons": comparisons,
        "ceilings": ceilings,
        "thresholds": thresholds,
    }


def _replay_all(
    sweeps: Sequence[Sweep], replayer: Replayer, root: Path, *, log: Log | None, progress: bool
) -> None:
    """An animation for every sweep of a model the user named, saying which one is replayed."""
    for sweep in sweeps:
        if (sweep.results["model"].get("sha256") or "") in replayer.paths and log is not None:
            log(f"replaying run 0 of each digit of {root / sweep.section.folder} ...")
        started = time.perf_counter()
        _animation(sweep, replayer, progress=progress)
        if sweep.section.animation is not None and log is not None:
            log(f"  replayed in {time.perf_counter() - started:.1f} s")


def write_pngs(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[Path]:
    """Every identikit under ``folder`` as ``out/<sweep folder>/<digit>-<run>.png`` (28 x 28,
    each pixel 8 x 8, grayscale), each file atomic; returns the files written."""
    root, target = Path(folder), Path(out)
    written = []
    for results_file in _files(root, RESULTS_FILE):
        sweep = results_file.parent
        if not os.path.lexists(sweep / IDENTIKITS_FILE):
            continue
        results = read_results(sweep, root=root)
        images, _ = read_identikits(sweep, results, root=root)
        # The sweep's place under ``root``, found by walking it: never ".." or absolute.
        place = target / sweep.relative_to(root)
        place.mkdir(parents=True, exist_ok=True)
        for image, run in zip(images, results["runs"], strict=True):
            path = place / f"{run['digit']}-{run['run']}.png"
            atomic_write_bytes(path, figures.identikit_png(image))
            written.append(path)
    return written


def render(context: dict[str, Any]) -> str:
    environment = Environment(
        loader=PackageLoader("identikit.reports", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    return environment.get_template("report.html").render(**context)


def build_report(
    folder: str | os.PathLike[str],
    *,
    animate: bool = True,
    models: Sequence[Path] = (),
    trust_code: bool = False,
    log: Log | None = None,
    progress: bool = False,
) -> Path:
    """Write ``folder/report.html`` atomically and return its path.

    ``models`` are the model files whose sweeps get animations (replayed from their seeds);
    without them the page has none: a results folder never chooses what code runs. ``log``
    hears what takes time (a line per sweep replayed); ``progress`` shows a bar on a terminal.
    """
    root = Path(folder)
    if not root.is_dir():
        raise IdentikitError(f"{root} is not a folder")
    replayer = Replayer.of(models, trust_code=trust_code) if animate and models else None
    context = collect(root, animate=animate, replayer=replayer, log=log, progress=progress)
    out = root / "report.html"
    atomic_write_text(out, render(context))
    return out
