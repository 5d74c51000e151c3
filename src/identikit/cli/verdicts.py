"""What ``identikit judge`` prints: each judge's agreement beside its own accuracy on real
images, and the classes by name where they have names.

A verdict is never shown without the accuracy of the judge that gave it: a judge that cannot
tell real images apart agrees with identikits at chance, and the two numbers side by side say
so at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from identikit.base.text import terminal_safe

# Per-class agreement is printed for at most this many classes (judge.json has them all).
CLASS_ROWS = 20


def class_names(verdict: dict[str, Any], classes: int) -> list[str]:
    """The names of the verdict's classes (the sweep's model's), else their numbers."""
    names = verdict.get("class_names")
    if isinstance(names, list) and len(names) == classes:
        return [str(name) for name in names]
    return [str(c) for c in range(classes)]


def accuracy_text(info: dict[str, Any] | None) -> str:
    """A judge's own accuracy, in words: ``92.3% of 600 real test images (file)``."""
    if not info or not info.get("test_images"):
        return "accuracy unknown"
    return (
        f"{info['accuracy']:.1%} on {info['test_images']:,} real test images "
        f"({terminal_safe(info['kind'])})"
    )


def format_judged(verdict: dict[str, Any], folder: Path) -> str:
    """One sweep's verdict: each judge's agreement and own accuracy, the nearest real images,
    and the agreement class by class (by name)."""
    where, strategy = terminal_safe(folder), terminal_safe(verdict["strategy"])
    info = verdict.get("judge_info", {})
    lines = [f"{verdict['identikits']} identikits of {where} ({strategy})"]
    width = max([12, *(len(terminal_safe(name)) + 1 for name in verdict["judges"])])
    for name, share in verdict["judges"].items():
        lines.append(
            f"  {terminal_safe(name):{width}s} calls {share:6.1%} of them their class; "
            f"its own accuracy {accuracy_text(info.get(name))}"
        )
    lines.append(
        f"  nearest real training image has their class: {verdict['nearest_neighbour']:.1%} "
        f"(median distance {verdict['median_distance_own_class']:.2f} to their class, "
        f"{verdict['median_distance_other_classes']:.2f} to others)"
    )
    lines += per_class_lines(verdict)
    lines.append(f"transfer matrices in {terminal_safe(folder / 'judge.json')}")
    return "\n".join(lines)


def per_class_lines(verdict: dict[str, Any]) -> list[str]:
    """Each class's share of identikits each judge calls that class, from the transfer
    matrices, one row per class that has identikits, by name (none past :data:`CLASS_ROWS`
    classes)."""
    matrices = verdict.get("transfer_matrices", {})
    if not matrices:
        return []
    classes = len(next(iter(matrices.values())))
    if classes > CLASS_ROWS:
        return [f"  ({classes} classes: per-class agreement in judge.json's transfer matrices)"]
    names = [terminal_safe(n) for n in class_names(verdict, classes)]
    judges = [terminal_safe(n) for n in matrices]
    left = max([5, *(len(n) for n in names)]) + 2
    width = max([8, *(len(n) + 2 for n in judges)])
    lines = ["  " + f"{'class':{left}s}" + "".join(f"{n:>{width}s}" for n in judges)]
    for c, name in enumerate(names):
        rows = [matrix[c] for matrix in matrices.values()]
        total = sum(rows[0])
        if total:  # classes without identikits have no row
            cells = "".join(f"{row[c] / total:>{width}.0%}" for row in rows)
            lines.append("  " + f"{name:{left}s}" + cells)
    return lines


def format_judged_table(verdicts: Sequence[dict[str, Any]], folder: Path) -> str:
    """One row per strategy of a comparison: each judge's agreement and the nearest-image
    share, with a row of each judge's own accuracy on real test images."""
    names = list(dict.fromkeys(name for v in verdicts for name in v["judges"]))
    shown = [terminal_safe(name) for name in names]
    width = max([12, *(len(n) + 2 for n in shown)])
    lines = [
        f"{'strategy':14s}" + "".join(f"{n:>{width}s}" for n in shown) + f"{'nearest':>{width}s}"
    ]
    for verdict in verdicts:
        cells = "".join(
            f"{verdict['judges'][n]:>{width}.1%}" if n in verdict["judges"] else f"{'-':>{width}s}"
            for n in names
        )
        strategy = terminal_safe(verdict["strategy"] or Path(verdict["sweep"]).name)
        lines.append(f"{strategy:14s}{cells}{verdict['nearest_neighbour']:>{width}.1%}")
    accuracies = {}
    for verdict in verdicts:
        accuracies.update(verdict.get("judge_info", {}))
    cells = "".join(
        f"{accuracies[n]['accuracy']:>{width}.1%}" if n in accuracies else f"{'?':>{width}s}"
        for n in names
    )
    lines.append(f"{'(accuracy)':14s}{cells}")
    lines.append(
        "(share of identikits each judge calls their class; accuracy: each judge's own on "
        "real test images; nearest: share whose nearest real training image has their class); "
        f"judge.json in each sweep of {terminal_safe(folder)}"
    )
    return "\n".join(lines)
