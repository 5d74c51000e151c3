"""The report: one self-contained HTML page from everything a folder of results holds.

``build_report(DIR)`` finds every sweep (``results.json`` + ``identikits.npz``), certainty
measurement (``certainty.json``), strategy comparison (``compare.json``), exact ceiling
(``ceiling.json``), judge verdict (``judge.json``) and identikit checkpoint (``*.pt``,
``*.pth``) under DIR, makes the figures, and renders ``templates/report.html`` with Jinja2.
Any of them may be missing; a folder with no results at all is refused. Images are inlined as
data URIs, so the page works offline and travels as one file. Each kind of result becomes its
section of the page in :mod:`identikit.reports.sections`.

A results folder may come from anyone, so nothing in it is trusted: every file is read through
its validating reader (:mod:`identikit.sweeps.folder` for sweeps,
:mod:`identikit.sweeps.result_files` for the other records), only regular files inside the folder
are read (a link that leads out is refused), and no model is loaded on the folder's say-so:
model cards come from what the results recorded and from checkpoints read as plain weights
(:mod:`identikit.reports.cards`), and animations are replayed only with model files the user
names (``identikit report DIR --model FILE``), matched by the hash of their content.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from identikit.base import figures
from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.limits import MODEL_BYTES
from identikit.base.safe_files import display_name, read_regular
from identikit.classifier import load_classifier
from identikit.engines.options import EngineOptions
from identikit.reports.cards import Cards, card_of_record
from identikit.reports.classes import ClassNaming, page_noun
from identikit.reports.replay import (
    REPLAY_ITERATIONS,
    Replay,
    replay_first_runs,
    why_another_path,
)
from identikit.reports.sections import (
    Sweep,
    ceiling_section,
    certainty_section,
    comparison_section,
    data_uri,
    summary_section,
    sweep_section,
)
from identikit.sweeps.compare import THRESHOLDS
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.records import IDENTIKITS_FILE, RESULTS_FILE
from identikit.sweeps.result_files import CEILING_FILE, CERTAINTY_FILE, COMPARE_FILE

Log = Callable[[str], None]


@dataclass(frozen=True)
class Replayer:
    """Model files the user named for replaying animations, by the hash of their content."""

    paths: dict[str, Path]  # sha256 -> file
    trust_code: bool = False
    # Only the sweeps of these strategies are replayed (None: all); a replay costs as much as
    # the sweep's first runs did.
    strategies: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        models: Sequence[Path],
        *,
        trust_code: bool = False,
        strategies: Collection[str] | None = None,
    ) -> Replayer:
        paths = {}
        for path in models:
            paths[hashlib.sha256(read_regular(path, limit=MODEL_BYTES)).hexdigest()] = path
        chosen = frozenset(strategies) if strategies is not None else None
        return cls(paths, trust_code, chosen)


def _animation(sweep: Sweep, replayer: Replayer, *, progress: bool) -> None:
    section, results = sweep.section, sweep.folder.results
    path = replayer.paths.get(results["model"].get("sha256") or "")
    if replayer.strategies is not None and section.strategy not in replayer.strategies:
        chosen = ", ".join(sorted(replayer.strategies)) or "none"
        section.animation_note = f"no animation: only sweeps of {chosen} were replayed"
        return
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
        engine = EngineOptions(
            backend=scoring.get("backend"),
            precision=scoring.get("precision", "fp32"),
            chunk_size=scoring.get("chunk_size"),
        )
        classifier = load_classifier(
            path, device="cpu", engine=engine, trust_code=replayer.trust_code
        )
        if classifier.sha256 != results["model"].get("sha256"):
            raise IdentikitError(f"{path} changed while the report was made")
        replays = replay_first_runs(classifier, sweep.folder, progress=progress)
    except IdentikitError as exc:
        section.animation_note = f"no animation: {exc}"
        return
    section.animation = data_uri(
        figures.animation_gif(
            [r.frames for r in replays],
            section.naming.labels(r.digit for r in replays),
            confidences=[r.confidences for r in replays],
        ),
        "image/gif",
    )
    section.animation_note = _replay_note(replays, why_another_path(results), section.naming)


def _replay_note(replays: Sequence[Replay], why: str, naming: ClassNaming) -> str:
    """What the animation shows, and where a replay did not end on the recorded identikit
    (``why``: the reason that holds for the sweep's engines)."""
    noun = naming.noun
    note = f"run 0 of each {noun}, replayed from its seed, with its best confidence so far"
    cut = ", ".join(naming.label(r.digit) for r in replays if not r.complete)
    unfaithful = ", ".join(naming.label(r.digit) for r in replays if r.complete and not r.faithful)
    if not cut and not unfaithful:
        return f"{note}: it ends on the identikit shown above"
    if cut:
        note += f"; for {noun}(s) {cut} only the first {REPLAY_ITERATIONS} iterations"
    if unfaithful:
        note += f"; for {noun}(s) {unfaithful} the replay took another path ({why})"
    return note


def _files(root: Path, name: str) -> list[Path]:
    """Every ``name`` under ``root``, without following links to folders (which could lead
    anywhere, or round in circles)."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        if name in files:
            found.append(Path(folder) / name)
    return sorted(found)


def _model_cards(root: Path, sweeps: Sequence[Sweep], ceilings: Sequence[dict[str, Any]]) -> Cards:
    """One card per model: from the sweeps' records, merged with the checkpoint files found
    under ``root`` and the models of the ceilings, all by SHA-256."""
    cards = Cards()
    for sweep in sweeps:
        cards.add(card_of_record(sweep.folder.results["model"]), used_by=sweep.section.folder)
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
        sweep_section(p.parent, root, datasets)
        for p in _files(root, RESULTS_FILE)
        if os.path.lexists(p.parent / IDENTIKITS_FILE)
    ]
    thresholds = [str(t) for t in THRESHOLDS]
    certainty = [certainty_section(p, root, sweeps) for p in _files(root, CERTAINTY_FILE)]
    comparisons = [comparison_section(p, root, thresholds) for p in _files(root, COMPARE_FILE)]
    ceilings = [ceiling_section(p, root) for p in _files(root, CEILING_FILE)]
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
        # "digit" only where every sweep's classes are digits; "class" on a page of none.
        "noun": page_noun(s.section.naming for s in sweeps) if sweeps else "class",
        "summary": summary_section(sweeps),
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
        sha256 = sweep.folder.results["model"].get("sha256") or ""
        if sha256 in replayer.paths and log is not None:
            noun = sweep.section.naming.noun
            log(f"replaying run 0 of each {noun} of {root / sweep.section.folder} ...")
        started = time.perf_counter()
        _animation(sweep, replayer, progress=progress)
        if sweep.section.animation is not None and log is not None:
            log(f"  replayed in {time.perf_counter() - started:.1f} s")


def write_pngs(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[Path]:
    """Every identikit under ``folder`` as ``out/<sweep folder>/<digit>-<run>.png``, grey or in
    colour, each pixel a square (8 x 8 for MNIST's images, larger for smaller ones), each file
    atomic; returns the files written.

    ``out`` is the user's (it may be a link they made); the sweep folders below it are made
    here, and one that is a link is refused rather than written through. An ``out`` that is a
    file is refused before anything is written.
    """
    root, target = Path(folder), Path(out)
    check_pngs_folder(target)
    written = []
    for results_file in _files(root, RESULTS_FILE):
        sweep = results_file.parent
        if not os.path.lexists(sweep / IDENTIKITS_FILE):
            continue
        read = read_sweep_folder(sweep, root=root)
        # The sweep's place under ``root``, found by walking it: never ".." or absolute.
        place = target / sweep.relative_to(root)
        for image, run in zip(read.images, read.results["runs"], strict=True):
            path = place / f"{run['digit']}-{run['run']}.png"
            atomic_write_bytes(path, figures.identikit_png(image), root=target)
            written.append(path)
    return written


def check_pngs_folder(out: Path) -> None:
    """Refuse, in one line, an ``--pngs`` that names something other than a folder (a link
    to one is the user's, and allowed)."""
    if os.path.lexists(out) and not out.is_dir():
        raise IdentikitError(f"--pngs {out} is not a folder; name a folder for the images")


def render(context: dict[str, Any]) -> str:
    environment = Environment(
        loader=PackageLoader("identikit.reports", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    return environment.get_template("report.html").render(**context)


def build_report(
    folder: str | os.PathLike[str],
    *,
    animate: bool | Collection[str] = True,
    models: Sequence[Path] = (),
    trust_code: bool = False,
    log: Log | None = None,
    progress: bool = False,
) -> Path:
    """Write ``folder/report.html`` atomically and return its path.

    ``models`` are the model files whose sweeps get animations (replayed from their seeds);
    without them the page has none: a results folder never chooses what code runs. ``animate``
    False replays nothing; a collection of strategy names replays only their sweeps. ``log``
    hears what takes time (a line per sweep replayed); ``progress`` shows a bar on a terminal.
    """
    root = Path(folder)
    if not root.is_dir():
        raise IdentikitError(f"{root} is not a folder")
    strategies = None if isinstance(animate, bool) else animate
    replayer = (
        Replayer.of(models, trust_code=trust_code, strategies=strategies)
        if animate is not False and models
        else None
    )
    context = collect(
        root, animate=animate is not False, replayer=replayer, log=log, progress=progress
    )
    out = root / "report.html"
    atomic_write_text(out, render(context))
    return out
