"""What a verdict records of its judges, as the report shows it beside their agreement.

A ``judge.json`` may carry ``judge_info``: per judge, its own accuracy on the dataset's test
images, how many it was scored on, the dataset, whether it is built in or a model file (and
which). An agreement means little without it (a judge at 15% on real images agrees with
nothing), so the page prints it beside every judge's column. Older verdicts have none and still
render, with a dash. The record comes from a results folder, so every field is checked; a
damaged one is refused in one line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identikit.base.safe_files import display_name
from identikit.sweeps.records import Fields


@dataclass(frozen=True)
class JudgeInfo:
    """One judge's own standing, as its verdict recorded it."""

    accuracy: float | None = None  # on ``test_images`` test images of ``dataset``
    test_images: int | None = None
    dataset: str = ""
    kind: str = ""  # "built-in" or "file"
    file: str = ""

    def short(self) -> str:
        """A few words: 97.9% accurate, or accuracy not recorded."""
        return "accuracy not recorded" if self.accuracy is None else f"{self.accuracy:.1%} accurate"

    def describe(self) -> str:
        """In full: 97.9% on 10,000 test images of mnist (built-in); "-" where unknown."""
        if self.accuracy is None:
            return "-"
        text = f"{self.accuracy:.1%}"
        if self.test_images is not None:
            text += f" on {self.test_images:,} test images"
        if self.dataset:
            text += f" of {dataset_label(self.dataset)}"
        where = self.file and display_name(self.file)
        if self.kind or where:
            text += f" ({', '.join(t for t in (self.kind, where) if t)})"
        return text


def dataset_label(spec: str) -> str:
    """A dataset's spec as a page shows it: a file or folder by its last part only
    (``npz:/home/me/x.npz`` is ``npz:x.npz``), so that a page shows no one's paths."""
    prefix, colon, rest = spec.partition(":")
    return f"{prefix}:{display_name(rest)}" if colon and "/" in rest else display_name(spec)


def judge_info(value: Any, source: str | Path) -> dict[str, JudgeInfo]:
    """The validated ``judge_info`` of a verdict read from ``source`` (empty where absent)."""
    if value is None:
        return {}
    fields = Fields(source)
    found = {}
    for name, entry in fields.mapping(value, "judge_info").items():
        where = f"judge_info.{name}"
        record = fields.mapping(entry, where)
        accuracy, images = record.get("accuracy"), record.get("test_images")
        found[fields.text(name, "judge_info")] = JudgeInfo(
            accuracy=None if accuracy is None else fields.number(accuracy, where, 0.0, 1.0),
            test_images=None if images is None else fields.integer(images, where, 0),
            dataset=fields.optional_text(record.get("dataset"), f"{where}.dataset") or "",
            kind=fields.optional_text(record.get("kind"), f"{where}.kind") or "",
            file=fields.optional_text(record.get("file"), f"{where}.file") or "",
        )
    return found


@dataclass(frozen=True)
class ColumnNote:
    """What a summary's judge column says of its judge: short, and in full (a tooltip)."""

    short: str
    full: str


def column_notes(
    judges: Sequence[str], infos: Sequence[Mapping[str, JudgeInfo]]
) -> dict[str, ColumnNote]:
    """Per judge column of a summary, its own accuracy: the one its verdicts recorded,
    "accuracy not recorded" where none did, "accuracy differs by sweep" where they recorded
    different ones (a judge scored on another dataset for another sweep; each sweep's table
    then shows its own)."""
    notes = {}
    for name in judges:
        seen = {info[name] for info in infos if name in info and info[name].accuracy is not None}
        if len(seen) == 1:
            info = seen.pop()
            notes[name] = ColumnNote(info.short(), info.describe())
        elif seen:
            full = "; ".join(sorted(info.describe() for info in seen))
            notes[name] = ColumnNote("accuracy differs by sweep", full)
        else:
            notes[name] = ColumnNote("accuracy not recorded", "")
    return notes
