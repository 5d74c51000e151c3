"""The text tables the commands print: each a function from a result to its lines.

The layers below return values (records, summaries, verdicts); only the command line turns
them into text, here, and prints it. Every name a user or a file gave (class names, sources,
strategies, folders) passes through :func:`~identikit.base.text.terminal_safe` on its way: a
name holding ``ESC [2J`` or a newline is shown escaped, never sent to the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from identikit.base.text import terminal_safe
from identikit.reports.judges import judge_info


def format_summary(results: dict[str, Any]) -> str:
    """The per-class table printed at the end of a sweep, aligned for names of any length."""
    target = results["settings"]["target"]
    names = results["model"].get("class_names") or []
    labels = {}
    for digit in results["summary"]:
        name = terminal_safe(names[int(digit)]) if int(digit) < len(names) else digit
        labels[digit] = digit if name == digit else f"{digit} {name}"
    width = max([len("class"), *map(len, labels.values())])
    lines = [
        f"{'class':>{width}}  runs  converged  rate   95% interval   median queries"
        f"   (target {target})",
    ]
    for digit, row in results["summary"].items():
        low, high = row["rate_ci95"]
        median = "-" if row["median_queries"] is None else f"{row['median_queries']:,.0f}"
        lines.append(
            f"{labels[digit]:>{width}}  {row['runs']:4d}  {row['converged']:9d}  {row['rate']:4.0%}"
            f"   [{low:4.0%}, {high:4.0%}]   {median:>14}"
        )
    rate = results["queries_per_second"]
    lines.append(
        f"{results['total_queries']:,} queries in {results['seconds']:.1f} s"
        + (f" ({rate:,.0f} images/s)" if rate and math.isfinite(rate) else "")
    )
    return "\n".join(lines)


def format_certainty(name: str, report: dict[str, dict[str, float]]) -> str:
    """The certainty table as printed by ``identikit certainty``."""
    lines = [
        f"{terminal_safe(name)}: largest softmax output",
        f"{'source':16s} {'n':>6s} {'mean':>6s} {'median':>6s} {'>0.6':>6s} {'>0.9':>6s} "
        f"{'>0.99':>6s}",
    ]
    for source, row in report.items():
        lines.append(
            f"{terminal_safe(source):16s} {row['n']:6d} {row['mean']:6.3f} {row['median']:6.3f} "
            f"{row['above_0.6']:6.1%} {row['above_0.9']:6.1%} {row['above_0.99']:6.1%}"
        )
    return "\n".join(lines)


def _queries(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_comparison(summary: dict[str, dict[str, Any]], thresholds: Sequence[float]) -> str:
    """One row per strategy of a comparison: success rate and median queries per threshold."""
    header = "".join(f"{'at ' + str(t):>18s}" for t in thresholds)
    lines = [f"{'strategy':14s}{header}   seconds   (success rate, median queries)"]
    for name, row in summary.items():
        cells = "".join(
            f"{row['success'][str(t)]:>8.0%} {_queries(row['median_queries'][str(t)]):>9s}"
            for t in thresholds
        )
        lines.append(f"{terminal_safe(name):14s}{cells}   {row['seconds']:7.1f}")
    return "\n".join(lines)


def format_reach(worst: float, thresholds: Sequence[float]) -> str:
    """The comparison's line on a linear model's exact ceiling: ``worst`` is 1 - p of its least
    certain class at the optimum."""
    reachable = [str(t) for t in thresholds if worst <= 1 - t] or ["none"]
    return (
        f"{'exact ceiling':14s}  the linear model can be made 1 - {worst:.1e} sure of "
        f"every class; thresholds within reach: {', '.join(reachable)}"
    )


def format_ceiling(rows: dict[str, dict[str, Any]]) -> str:
    """Per class: the best image's 1 - p, its certificate, and which targets are reachable."""
    lines = ["class   best 1 - p    certified within (log-prob)   reaches 0.99 / 0.9999"]
    for name, row in rows.items():
        lines.append(
            f"{terminal_safe(name):>5}   {row['shortfall']:10.2e}    {row['gap']:10.1e}"
            f"                   {'yes' if row['reaches_0.99'] else 'no':>3} / "
            f"{'yes' if row['reaches_0.9999'] else 'no'}"
        )
    return "\n".join(lines)


def format_verdict(verdict: dict[str, Any], folder: Path) -> str:
    """The verdict on one sweep: each judge's agreement and the nearest real digits."""
    where, strategy = terminal_safe(folder), terminal_safe(verdict["strategy"])
    lines = [f"{verdict['identikits']} identikits of {where} ({strategy})"]
    info = judge_info(verdict.get("judge_info"), folder / "judge.json")
    for name, share in verdict["judges"].items():
        own = f" (its own accuracy: {terminal_safe(info[name].describe())})" if name in info else ""
        lines.append(f"  {terminal_safe(name):12s} calls {share:6.1%} of them their class{own}")
    lines.append(
        f"  nearest real training image has their class: {verdict['nearest_neighbour']:.1%} "
        f"(median distance {verdict['median_distance_own_class']:.2f} to their class, "
        f"{verdict['median_distance_other_classes']:.2f} to others)"
    )
    lines.append(f"transfer matrices in {terminal_safe(folder / 'judge.json')}")
    return "\n".join(lines)


def format_verdict_table(verdicts: Sequence[dict[str, Any]], folder: Path) -> str:
    """One row per strategy of a comparison: each judge's agreement and the nearest-real-digit
    share."""
    names = list(dict.fromkeys(terminal_safe(name) for v in verdicts for name in v["judges"]))
    width = max([12, *(len(n) + 2 for n in names)])
    lines = [
        f"{'strategy':14s}" + "".join(f"{n:>{width}s}" for n in names) + f"{'nearest':>{width}s}"
    ]
    for verdict in verdicts:
        shares = {terminal_safe(n): share for n, share in verdict["judges"].items()}
        cells = "".join(
            f"{shares[n]:>{width}.1%}" if n in shares else f"{'-':>{width}s}" for n in names
        )
        strategy = terminal_safe(verdict["strategy"] or Path(verdict["sweep"]).name)
        lines.append(f"{strategy:14s}{cells}{verdict['nearest_neighbour']:>{width}.1%}")
    lines.append(
        "(share of identikits each judge calls their class; nearest: share whose nearest real "
        f"training image has their class); judge.json in each sweep of {terminal_safe(folder)}"
    )
    return "\n".join(lines)
