"""The JSON records of comparisons and studies: one writer and one validating reader each.

* ``compare.json``: per strategy of a comparison, success rates and median queries per
  threshold (written by ``compare``);
* ``judge.json``: a sweep's verdict, the judges' agreement and the nearest real digits;
* ``certainty.json``: per source of images, how sure the model is;
* ``ceiling.json``: a linear model's exact best confidence per class.

Every writer records a format version (``"version"``; ``ceiling.json`` also its ``"format"``)
and every reader checks it: a file written before versions were recorded reads as version 1,
and one written by a newer identikit is refused in one line. Readers check every field the
report uses, as :mod:`identikit.sweeps.records` does for ``results.json``; the other keys of a
record are as they always were.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from identikit.base.atomic import atomic_write_text
from identikit.base.limits import CLASSES
from identikit.base.safe_files import read_json
from identikit.sweeps.records import Fields, check_version

COMPARE_FILE = "compare.json"
JUDGE_FILE = "judge.json"
CERTAINTY_FILE = "certainty.json"
CEILING_FILE = "ceiling.json"
CEILING_FORMAT = "identikit-ceiling"
# The newest format version of each record that this code writes and reads.
COMPARE_VERSION = JUDGE_VERSION = CERTAINTY_VERSION = CEILING_VERSION = 1
# What ``ceiling.json`` says is within reach, and the largest shortfall 1 - p that reaches it.
CEILING_REACH = {"reaches_0.99": 1e-2, "reaches_0.9999": 1e-4}
CERTAINTY_FIELDS = ("mean", "median", "above_0.6", "above_0.9", "above_0.99")


def _write(path: Path, record: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def _rows(value: Any, fields: Fields, newest: int) -> dict[str, Any]:
    """The named rows of a record keyed by name (a strategy, a source) beside its version."""
    record = fields.mapping(value, "the record")
    check_version(record, fields, newest)
    return {name: row for name, row in record.items() if name != "version"}


# --- compare.json ------------------------------------------------------------------------------


def write_comparison(folder: str | os.PathLike[str], summary: dict[str, Any]) -> Path:
    """Write ``compare.json`` (each strategy's summary, by name) into ``folder``."""
    return _write(Path(folder) / COMPARE_FILE, {"version": COMPARE_VERSION, **summary})


def compared_strategies(folder: str | os.PathLike[str]) -> list[str]:
    """The strategies ``folder``'s ``compare.json`` names, in its order (rows not checked)."""
    path = Path(folder) / COMPARE_FILE
    return list(_rows(read_json(path), Fields(path), COMPARE_VERSION))


def check_compare(
    value: Any, source: str | Path, thresholds: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """A validated ``compare.json``: per strategy, success and median queries per threshold."""
    fields = Fields(source)
    rows: dict[str, dict[str, Any]] = {}
    for name, row in _rows(value, fields, COMPARE_VERSION).items():
        row = fields.mapping(row, name)
        success = fields.mapping(row.get("success"), f"{name}.success")
        medians = fields.mapping(row.get("median_queries"), f"{name}.median_queries")
        rows[name] = {
            "success": {
                t: fields.number(success.get(t), f"{name}.success", 0, 1) for t in thresholds
            },
            "median_queries": {
                t: fields.optional_number(medians.get(t), f"{name}.median_queries", 0)
                for t in thresholds
            },
            "seconds": fields.number(row.get("seconds"), f"{name}.seconds", 0.0),
        }
    return rows


def read_comparison(
    folder: Path, thresholds: Sequence[str], *, root: Path | None = None
) -> dict[str, dict[str, Any]]:
    """The validated ``compare.json`` of ``folder`` (inside ``root`` when given)."""
    path = folder / COMPARE_FILE
    return check_compare(read_json(path, root=root), path, thresholds)


# --- judge.json --------------------------------------------------------------------------------


def write_verdict(folder: str | os.PathLike[str], verdict: dict[str, Any]) -> Path:
    """Write ``judge.json``, a sweep's verdict, into the sweep's ``folder``."""
    return _write(Path(folder) / JUDGE_FILE, {"version": JUDGE_VERSION, **verdict})


def check_judge(
    value: Any,
    source: str | Path,
    classes: int,
    *,
    identikits: int | None = None,
    train_size: int | None = None,
) -> dict[str, Any]:
    """A validated ``judge.json``: shares in [0, 1] and square transfer matrices.

    The optional ``dataset`` (the name the nearest images come from) and ``nearest_index``
    (per identikit, the index of its nearest image in that dataset's training split) are
    returned as None where absent (a judge.json written before them); indices are whole
    numbers from 0 (below ``train_size`` when given), one per identikit: ``identikits`` when
    given (the sweep's count, which the file must agree with), else the file's own count.
    ``judge_info`` (per judge: its ``accuracy`` on ``test_images`` test images of ``dataset``,
    its ``kind``, ``built-in`` or ``file``, and its ``file``) is empty where absent,
    ``class_names`` and ``identikits_sha256`` (what the verdicts are of) None.
    """
    fields = Fields(source)
    verdict = fields.mapping(value, "the verdict")
    check_version(verdict, fields, JUDGE_VERSION)
    judges = {
        fields.text(name, "judges"): fields.number(share, f"judges.{name}", 0.0, 1.0)
        for name, share in fields.mapping(verdict.get("judges", {}), "judges").items()
    }
    nearest = verdict.get("nearest_neighbour")
    dataset = verdict.get("dataset")
    return {
        "judges": judges,
        "nearest_neighbour": None
        if nearest is None
        else fields.number(nearest, "nearest_neighbour", 0.0, 1.0),
        "transfer_matrices": _matrices(fields, verdict, classes),
        "dataset": None if dataset is None else fields.text(dataset, "dataset"),
        "nearest_index": _nearest_index(fields, verdict, identikits, train_size),
        "judge_info": _judge_info(fields, verdict),
        "class_names": _class_names(fields, verdict, classes),
        "identikits_sha256": _optional_text(fields, verdict, "identikits_sha256"),
    }


JUDGE_KINDS = ("built-in", "file")


def _judge_info(fields: Fields, verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each judge's own accuracy on real test images, its kind and file."""
    info = {}
    for name, entry in fields.mapping(verdict.get("judge_info", {}), "judge_info").items():
        where = f"judge_info.{name}"
        entry = fields.mapping(entry, where)
        kind = fields.text(entry.get("kind"), f"{where}.kind")
        if kind not in JUDGE_KINDS:
            fields.fail(f"{where}.kind", f"is {kind!r}, not one of {', '.join(JUDGE_KINDS)}")
        file = entry.get("file")
        info[fields.text(name, "judge_info")] = {
            "accuracy": fields.number(entry.get("accuracy"), f"{where}.accuracy", 0.0, 1.0),
            "test_images": fields.integer(entry.get("test_images"), f"{where}.test_images", 0),
            "dataset": fields.text(entry.get("dataset"), f"{where}.dataset"),
            "kind": kind,
            "file": None if file is None else fields.text(file, f"{where}.file"),
        }
    return info


def _class_names(fields: Fields, verdict: dict[str, Any], classes: int) -> list[str] | None:
    names = verdict.get("class_names")
    if names is None:
        return None
    return [
        fields.text(name, f"class_names[{i}]")
        for i, name in enumerate(fields.sequence(names, "class_names", classes))
    ]


def _optional_text(fields: Fields, verdict: dict[str, Any], key: str) -> str | None:
    value = verdict.get(key)
    return None if value is None else fields.text(value, key)


def _matrices(fields: Fields, verdict: dict[str, Any], classes: int) -> dict[str, list[Any]]:
    matrices = {}
    for name, matrix in fields.mapping(verdict.get("transfer_matrices", {}), "matrices").items():
        rows = fields.sequence(matrix, f"transfer_matrices.{name}", classes)
        for i, row in enumerate(rows):
            for count in fields.sequence(row, f"transfer_matrices.{name}[{i}]", classes):
                fields.integer(count, f"transfer_matrices.{name}[{i}]", 0)
        matrices[name] = rows
    return matrices


def _nearest_index(
    fields: Fields, verdict: dict[str, Any], identikits: int | None, train_size: int | None
) -> list[int] | None:
    indices = verdict.get("nearest_index")
    if indices is None:
        return None
    if identikits is None:
        identikits = fields.integer(verdict.get("identikits"), "identikits", 0)
    high = None if train_size is None else train_size - 1
    return [
        fields.integer(index, f"nearest_index[{i}]", 0, high)
        for i, index in enumerate(fields.sequence(indices, "nearest_index", identikits))
    ]


def read_verdict(
    folder: Path, classes: int, *, identikits: int | None = None, root: Path | None = None
) -> dict[str, Any]:
    """The validated ``judge.json`` of the sweep in ``folder`` (see :func:`check_judge`)."""
    path = folder / JUDGE_FILE
    return check_judge(read_json(path, root=root), path, classes, identikits=identikits)


# --- certainty.json ----------------------------------------------------------------------------


def write_certainty_record(
    folder: str | os.PathLike[str], report: dict[str, dict[str, float]]
) -> Path:
    """Write ``certainty.json`` (per source: n and the statistics) into ``folder``."""
    return _write(Path(folder) / CERTAINTY_FILE, {"version": CERTAINTY_VERSION, **report})


def check_certainty(value: Any, source: str | Path) -> dict[str, dict[str, float]]:
    """A validated ``certainty.json``: per source, n and statistics in [0, 1]."""
    fields = Fields(source)
    rows: dict[str, dict[str, float]] = {}
    for name, row in _rows(value, fields, CERTAINTY_VERSION).items():
        row = fields.mapping(row, name)
        rows[name] = {"n": fields.integer(row.get("n"), f"{name}.n", 0)}
        for key in CERTAINTY_FIELDS:
            rows[name][key] = fields.number(row.get(key), f"{name}.{key}", 0.0, 1.0)
    return rows


def read_certainty(folder: Path, *, root: Path | None = None) -> dict[str, dict[str, float]]:
    """The validated ``certainty.json`` of ``folder`` (inside ``root`` when given)."""
    path = folder / CERTAINTY_FILE
    return check_certainty(read_json(path, root=root), path)


# --- ceiling.json ------------------------------------------------------------------------------


def write_ceiling_record(
    folder: str | os.PathLike[str], *, name: str, sha256: str, rows: dict[str, dict[str, Any]]
) -> Path:
    """Write ``ceiling.json``: the model's name and SHA-256, and per class ``rows``."""
    record = {
        "format": CEILING_FORMAT,
        "version": CEILING_VERSION,
        "model": {"name": name, "sha256": sha256},
        "classes": rows,
    }
    return _write(Path(folder) / CEILING_FILE, record)


def check_ceiling(value: Any, source: str | Path) -> dict[str, Any]:
    """A validated ``ceiling.json``: the model's name and SHA-256, and per class its shortfall
    (1 - p of the best image, in [0, 1]) and certified gap (>= 0); whether each class reaches
    0.99 and 0.9999 is recomputed from the shortfall rather than trusted."""
    fields = Fields(source)
    record = fields.mapping(value, "the record")
    if record.get("format") != CEILING_FORMAT or "version" not in record:
        fields.fail("the record", f"is not an {CEILING_FORMAT} record with a format version")
    check_version(record, fields, CEILING_VERSION)
    model = fields.mapping(record.get("model"), "model")
    name = fields.text(model.get("name"), "model.name")
    sha256 = fields.text(model.get("sha256"), "model.sha256")
    rows = fields.mapping(record.get("classes"), "classes")
    if not 2 <= len(rows) <= CLASSES.value:
        fields.fail("classes", f"has {len(rows)} entries, expected 2 to {CLASSES.value}")
    if list(rows) != [str(c) for c in range(len(rows))]:
        fields.fail("classes", "are not named 0, 1, 2, ... in order")
    classes = {}
    for label, row in rows.items():
        row = fields.mapping(row, f"classes.{label}")
        shortfall = fields.number(row.get("shortfall"), f"classes.{label}.shortfall", 0.0, 1.0)
        classes[label] = {
            "shortfall": shortfall,
            "gap": fields.number(row.get("gap"), f"classes.{label}.gap", 0.0),
            **{key: shortfall <= most for key, most in CEILING_REACH.items()},
        }
    return {"model": {"name": name, "sha256": sha256}, "classes": classes}


def read_ceiling(folder: Path, *, root: Path | None = None) -> dict[str, Any]:
    """The validated ``ceiling.json`` of ``folder`` (inside ``root`` when given)."""
    path = folder / CEILING_FILE
    return check_ceiling(read_json(path, root=root), path)
