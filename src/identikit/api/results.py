"""What the Python API returns: typed results that show themselves in a notebook.

Each result holds its numbers as plain values (images as NumPy arrays, runs as :class:`Run`
records, summaries as dicts keyed like the JSON files) and has ``_repr_html_``, which Jupyter
calls to draw it: the identikit grid and the per-class table for a search, the statistics and
histograms for certainty, the strategies side by side for a comparison, the judges' agreement
for a verdict. The HTML is self-contained (images as data URIs) and every text is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from identikit.base.figures import certainty_histogram, identikit_grid
from identikit.reports.classes import ClassNaming
from identikit.reports.judges import judge_info
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.reconstruction import convergence_measure


def _png(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table of already formatted cells, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _queries(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


@dataclass(frozen=True)
class Run:
    """One run of a search: the class it searched for, its seed and how it ended."""

    digit: int
    run: int
    seed: int
    confidence: float  # the model's probability of ``digit`` for the run's best image
    status: str  # converged, stuck or budget
    queries: int  # images the model scored for this run
    iterations: int

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> Run:
        """A run from its (validated) entry in ``results.json``."""
        return cls(
            digit=int(record["digit"]),
            run=int(record["run"]),
            seed=int(record["seed"]),
            confidence=float(record["confidence"]),
            status=str(record["status"]),
            queries=int(record["queries"]),
            iterations=int(record["iterations"]),
        )


@dataclass(frozen=True)
class SearchResult:
    """A finished sweep: its identikits, its runs and its per-class summary.

    ``images[i]`` (float32 in [0, 1]; H x W for a grey model, C x H x W otherwise, as
    identikits.npz holds them) is the best image of ``runs[i]``; ``folder`` is where the
    sweep's files are (None when the search ran in a temporary folder).
    """

    config: SweepConfig
    images: np.ndarray
    runs: tuple[Run, ...]
    summary: dict[str, dict[str, Any]]
    record: dict[str, Any] = field(repr=False)  # the whole results.json
    folder: Path | None = None
    resumed: bool = False  # continued a state saved in ``folder``
    already_done: bool = False  # ``folder`` held this sweep, finished: nothing was computed
    rebuilt: tuple[str, ...] = ()  # outputs found missing in ``folder`` and written again

    @property
    def digits(self) -> np.ndarray:
        """The class each run searched for, in the order of the runs."""
        return np.array([run.digit for run in self.runs], dtype=np.int64)

    @property
    def converged(self) -> float:
        """The fraction of runs that reached the target."""
        return sum(run.status == "converged" for run in self.runs) / len(self.runs)

    @property
    def total_queries(self) -> int:
        return int(self.record["total_queries"])

    @property
    def naming(self) -> ClassNaming:
        """The names of the sweep's classes (numbers where the model had none), and whether
        they are digits."""
        return ClassNaming.of_results(self.record)

    def _repr_html_(self) -> str:
        model = str(self.record["model"].get("name", "model"))
        naming = self.naming
        title = f"{model}: {self.config.strategy}, {self.config.runs} runs per {naming.noun}"
        rows = [
            (
                naming.numbered(int(digit)),
                row["runs"],
                row["converged"],
                f"{row['rate']:.0%}",
                f"[{row['rate_ci95'][0]:.0%}, {row['rate_ci95'][1]:.0%}]",
                _queries(row["median_queries"]),
            )
            for digit, row in self.summary.items()
        ]
        # Labels in red below the measure the user asked for: the target, or 0.99 for a
        # reconstruction (which draws on to 0.9999).
        measure = convergence_measure(self.record["settings"])
        grid = identikit_grid(
            self.images,
            self.digits,
            [run.confidence for run in self.runs],
            target=measure,
            title=f"{model}: {self.config.strategy}",
            names=naming.names,
        )
        header = (naming.noun, "runs", "converged", "rate", "95% interval", "median queries")
        reached = sum(run.confidence >= measure for run in self.runs)
        return (
            f"<div><strong>{html.escape(title)}</strong><br>{_png(grid, title)}"
            + _table(header, rows)
            + f"<p>{self.total_queries:,} queries (target {self.config.target}); "
            f"{reached} of {len(self.runs)} runs at {measure} or above</p></div>"
        )


@dataclass(frozen=True)
class CertaintyResult:
    """The largest softmax output of a model on real and on random images, per source."""

    model: str
    maxima: dict[str, np.ndarray] = field(repr=False)  # every sample's largest output
    statistics: dict[str, dict[str, float]]  # as certainty.json writes them

    def _repr_html_(self) -> str:
        rows = [
            (
                source,
                int(row["n"]),
                f"{row['mean']:.3f}",
                f"{row['median']:.3f}",
                f"{row['above_0.6']:.1%}",
                f"{row['above_0.9']:.1%}",
                f"{row['above_0.99']:.1%}",
            )
            for source, row in self.statistics.items()
        ]
        title = f"{self.model}: largest softmax output"
        picture = certainty_histogram(self.maxima, title=title)
        return (
            f"<div><strong>{html.escape(title)}</strong>"
            + _table(("source", "n", "mean", "median", ">0.6", ">0.9", ">0.99"), rows)
            + f"{_png(picture, title)}</div>"
        )


@dataclass(frozen=True)
class ComparisonResult:
    """Several strategies on the same runs and budget: each one's sweep and summary."""

    sweeps: dict[str, SearchResult]  # by strategy
    summary: dict[str, dict[str, Any]]  # as compare.json writes it, by strategy
    folder: Path | None = None

    def _repr_html_(self) -> str:
        thresholds = list(next(iter(self.summary.values()))["success"]) if self.summary else []
        rows = [
            (
                name,
                *(f"{row['success'][t]:.0%}" for t in thresholds),
                *(_queries(row["median_queries"][t]) for t in thresholds),
            )
            for name, row in self.summary.items()
        ]
        header = (
            "strategy",
            *(f"reached {t}" for t in thresholds),
            *(f"median queries to {t}" for t in thresholds),
        )
        return (
            "<div><strong>strategies compared</strong>"
            + _table(header, rows)
            + "".join(sweep._repr_html_() for sweep in self.sweeps.values())
            + "</div>"
        )


@dataclass(frozen=True)
class JudgeResult:
    """Whether independent models and the nearest real images agree with a sweep's identikits."""

    folder: Path
    verdict: dict[str, Any]  # as judge.json writes it

    @property
    def agreement(self) -> dict[str, float]:
        """Each judge's share of identikits it classifies as the class they were drawn for."""
        return {name: float(share) for name, share in self.verdict["judges"].items()}

    @property
    def nearest_neighbour(self) -> float:
        """The share of identikits whose nearest real image is of their own class."""
        return float(self.verdict["nearest_neighbour"])

    def _repr_html_(self) -> str:
        # Each judge's own accuracy beside its agreement, where the verdict recorded it.
        info = judge_info(self.verdict.get("judge_info"), self.folder / "judge.json")
        rows = [
            (name, f"{share:.0%}", info[name].describe() if name in info else "-")
            for name, share in self.agreement.items()
        ]
        rows.append(("nearest real image", f"{self.nearest_neighbour:.0%}", "-"))
        title = f"{self.folder.name}: {self.verdict.get('strategy') or ''}"
        table = _table(("judge", "agrees", "its own accuracy"), rows)
        return f"<div><strong>{html.escape(title)}</strong>{table}</div>"


@dataclass(frozen=True)
class Report:
    """The report page written for a results folder."""

    path: Path

    def _repr_html_(self) -> str:
        uri = html.escape(self.path.resolve().as_uri(), quote=True)
        return f'<a href="{uri}" target="_blank">{html.escape(str(self.path))}</a>'
