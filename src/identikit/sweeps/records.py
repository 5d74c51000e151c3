"""One validating reader per results file: a damaged or hand-edited folder is one clear line.

``results.json``, ``identikits.npz``, ``judge.json``, ``certainty.json`` and ``compare.json`` are
read back by resume, ``judge`` and ``report``. A folder may come from a colleague, a crashed
disk or a hostile hand, so each reader checks every field its readers use (types, ranges,
lengths, agreement between files) and answers with a plain value or an
:class:`~identikit.base.errors.IdentikitError` naming the file and the field; nothing downstream
meets a ``KeyError`` or a list where a number should be. Files are read through
:mod:`identikit.base.safe_files` (regular files only, sizes bounded). Summaries that can be
recomputed from the runs are recomputed rather than trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from identikit.base.analysis import summarise_runs
from identikit.base.errors import IdentikitError
from identikit.base.limits import CLASSES
from identikit.base.safe_files import read_json, read_npz
from identikit.base.values import is_finite, is_number, is_whole
from identikit.strategies import STATUS_NAMES
from identikit.sweeps.experiment import SweepConfig

RESULTS_FILE = "results.json"
IDENTIKITS_FILE = "identikits.npz"


class Fields:
    """Typed access to a parsed JSON value; every failure names the file and the field."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)

    def fail(self, where: str, what: str) -> NoReturn:
        raise IdentikitError(f"{self.source}: {where} {what}; the file is damaged or edited")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, "is not an object")
        return value

    def sequence(self, value: Any, where: str, length: int | None = None) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, "is not a list")
        if length is not None and len(value) != length:
            self.fail(where, f"has {len(value)} entries, expected {length}")
        return value

    def integer(
        self, value: Any, where: str, low: int | None = None, high: int | None = None
    ) -> int:
        if not is_whole(value):
            self.fail(where, "is not a whole number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(where, f"= {value} is out of range")
        return value

    def number(
        self, value: Any, where: str, low: float | None = None, high: float | None = None
    ) -> float:
        if not is_number(value):
            self.fail(where, "is not a number")
        if not is_finite(value):
            self.fail(where, "is not finite")
        number = float(value)
        if (low is not None and number < low) or (high is not None and number > high):
            self.fail(where, f"= {value} is out of range")
        return number

    def optional_number(self, value: Any, where: str, low: float | None = None) -> float | None:
        return None if value is None else self.number(value, where, low)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            self.fail(where, "is not a string")
        return value

    def optional_text(self, value: Any, where: str) -> str | None:
        return None if value is None else self.text(value, where)


def sweep_config(settings: dict[str, Any], fields: Fields) -> SweepConfig:
    """The :class:`SweepConfig` a results record's settings describe (validated by it)."""
    known = set(SweepConfig.__dataclass_fields__)
    unknown = sorted(set(settings) - known)
    if unknown:
        fields.fail("settings", f"have unknown entries {unknown}")
    digits = fields.sequence(settings.get("digits"), "settings.digits")
    for i, digit in enumerate(digits):
        fields.integer(digit, f"settings.digits[{i}]", 0, CLASSES.value - 1)
    for name in ("runs", "seed", "patience", "max_queries"):
        fields.integer(settings.get(name), f"settings.{name}")
    fields.number(settings.get("target"), "settings.target", 0.0, 1.0)
    fields.text(settings.get("strategy"), "settings.strategy")
    fields.text(settings.get("start"), "settings.start")
    fields.mapping(settings.get("strategy_settings"), "settings.strategy_settings")
    try:
        return SweepConfig(**{**settings, "digits": tuple(digits)})
    except IdentikitError as exc:
        fields.fail("settings", f"are not a valid sweep ({exc})")
    except TypeError as exc:  # a strategy setting of the wrong type
        fields.fail("settings", f"are not a valid sweep ({exc})")


def check_results(value: Any, source: str | Path) -> dict[str, Any]:
    """A validated ``results.json`` record (its summary recomputed from its runs)."""
    fields = Fields(source)
    record = fields.mapping(value, "the record")
    if record.get("format") != "identikit-sweep" or record.get("version") != 1:
        fields.fail("the record", "is not an identikit sweep of format version 1")
    config = sweep_config(fields.mapping(record.get("settings"), "settings"), fields)
    model = fields.mapping(record.get("model"), "model")
    fields.text(model.get("name"), "model.name")
    fields.optional_text(model.get("sha256"), "model.sha256")
    fields.optional_text(model.get("path"), "model.path")
    classes = fields.integer(model.get("classes"), "model.classes", 2, CLASSES.value)
    names = model.get("class_names")
    if names is not None:
        for i, name in enumerate(fields.sequence(names, "model.class_names", classes)):
            fields.text(name, f"model.class_names[{i}]")
    card = model.get("card")
    if card is not None:
        _check_card(fields, fields.mapping(card, "model.card"))
    if max(config.digits) >= classes:
        fields.fail("settings.digits", f"name classes the model ({classes} classes) lacks")
    runs = fields.sequence(record.get("runs"), "runs", len(config.layout()))
    for i, (run, (digit, number, seed)) in enumerate(zip(runs, config.layout(), strict=True)):
        _check_run(fields, fields.mapping(run, f"runs[{i}]"), f"runs[{i}]", (digit, number, seed))
    fields.integer(record.get("total_queries"), "total_queries", 0)
    fields.number(record.get("seconds"), "seconds", 0.0)
    fields.optional_number(record.get("queries_per_second"), "queries_per_second", 0.0)
    if "queries_per_step" in record:
        fields.integer(record["queries_per_step"], "queries_per_step", 1)
    scoring = record.get("scoring")
    if scoring is not None:
        scoring = fields.mapping(scoring, "scoring")
        fields.text(scoring.get("backend"), "scoring.backend")
        fields.text(scoring.get("precision"), "scoring.precision")
        fields.integer(scoring.get("chunk_size"), "scoring.chunk_size", 1, 1 << 20)
    return {**record, "summary": summarise_runs(runs, config.digits)}


def _check_card(fields: Fields, card: dict[str, Any]) -> None:
    if card.get("architecture") is not None:
        fields.text(card["architecture"], "model.card.architecture")
    if "parameters" in card:
        fields.integer(card["parameters"], "model.card.parameters", 0)
    if card.get("test_accuracy") is not None:
        fields.number(card["test_accuracy"], "model.card.test_accuracy", 0.0, 1.0)
    for name in ("epochs", "seed"):
        if card.get(name) is not None:
            fields.integer(card[name], f"model.card.{name}")


def _check_run(fields: Fields, run: dict[str, Any], where: str, expected: tuple[int, ...]) -> None:
    digit, number, seed = expected
    if (run.get("digit"), run.get("run"), run.get("seed")) != (digit, number, seed):
        fields.fail(where, f"is not run {number} of digit {digit} with its seed")
    fields.number(run.get("confidence"), f"{where}.confidence", 0.0, 1.0)
    if run.get("status") not in STATUS_NAMES:
        fields.fail(f"{where}.status", "is not a known status")
    fields.integer(run.get("iterations"), f"{where}.iterations", 0)
    fields.integer(run.get("queries"), f"{where}.queries", 0)
    history = fields.sequence(run.get("history"), f"{where}.history")
    if len(history) != run["iterations"] + 1:
        fields.fail(f"{where}.history", "does not have one entry per iteration")
    for value in history:
        fields.number(value, f"{where}.history", 0.0, 1.0)


def read_results(folder: Path, *, root: Path | None = None) -> dict[str, Any]:
    """The validated ``results.json`` of a sweep folder."""
    path = folder / RESULTS_FILE
    return check_results(read_json(path, root=root), path)


def read_identikits(
    folder: Path, results: dict[str, Any], *, root: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) float32 in [0, 1] and digits (N,), checked against ``results``."""
    path = folder / IDENTIKITS_FILE
    arrays = read_npz(path, root=root)
    fields = Fields(path)
    if "images" not in arrays or "digits" not in arrays:
        fields.fail("the archive", "lacks the arrays 'images' and 'digits'")
    images, digits = arrays["images"], arrays["digits"]
    expected = [run["digit"] for run in results["runs"]]
    if images.dtype.kind != "f" or images.shape != (len(expected), 28, 28):
        fields.fail(
            "images",
            f"have shape {images.shape} ({images.dtype}), expected "
            f"({len(expected)}, 28, 28) floats",
        )
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        fields.fail("images", "are not pixels in [0, 1]")
    if digits.dtype.kind not in "iu" or digits.tolist() != expected:
        fields.fail("digits", "do not match the runs of results.json")
    return images.astype(np.float32), digits.astype(np.int64)


def check_judge(
    value: Any,
    source: str | Path,
    classes: int,
    *,
    identikits: int | None = None,
    train_size: int | None = None,
) -> dict[str, Any]:
    """A validated ``judge.json``: shares in [0, 1] and square transfer matrices.

    The optional ``dataset`` (the name the nearest digits come from) and ``nearest_index``
    (per identikit, the index of its nearest digit in that dataset's training split) are
    returned as None where absent (a judge.json written before them); indices are whole
    numbers from 0 (below ``train_size`` when given), one per identikit: ``identikits`` when
    given (the sweep's count, which the file must agree with), else the file's own count.
    """
    fields = Fields(source)
    verdict = fields.mapping(value, "the verdict")
    judges = {
        fields.text(name, "judges"): fields.number(share, f"judges.{name}", 0.0, 1.0)
        for name, share in fields.mapping(verdict.get("judges", {}), "judges").items()
    }
    nearest = verdict.get("nearest_neighbour")
    matrices = {}
    for name, matrix in fields.mapping(verdict.get("transfer_matrices", {}), "matrices").items():
        rows = fields.sequence(matrix, f"transfer_matrices.{name}", classes)
        for i, row in enumerate(rows):
            for count in fields.sequence(row, f"transfer_matrices.{name}[{i}]", classes):
                fields.integer(count, f"transfer_matrices.{name}[{i}]", 0)
        matrices[name] = rows
    dataset = verdict.get("dataset")
    indices = verdict.get("nearest_index")
    if indices is not None:
        if identikits is None:
            identikits = fields.integer(verdict.get("identikits"), "identikits", 0)
        high = None if train_size is None else train_size - 1
        indices = [
            fields.integer(index, f"nearest_index[{i}]", 0, high)
            for i, index in enumerate(fields.sequence(indices, "nearest_index", identikits))
        ]
    return {
        "judges": judges,
        "nearest_neighbour": None
        if nearest is None
        else fields.number(nearest, "nearest_neighbour", 0.0, 1.0),
        "transfer_matrices": matrices,
        "dataset": None if dataset is None else fields.text(dataset, "dataset"),
        "nearest_index": indices,
    }


CERTAINTY_FIELDS = ("mean", "median", "above_0.6", "above_0.9", "above_0.99")


def check_certainty(value: Any, source: str | Path) -> dict[str, dict[str, float]]:
    """A validated ``certainty.json``: per source, n and statistics in [0, 1]."""
    fields = Fields(source)
    rows: dict[str, dict[str, float]] = {}
    for name, row in fields.mapping(value, "the record").items():
        row = fields.mapping(row, name)
        rows[name] = {"n": fields.integer(row.get("n"), f"{name}.n", 0)}
        for key in CERTAINTY_FIELDS:
            rows[name][key] = fields.number(row.get(key), f"{name}.{key}", 0.0, 1.0)
    return rows


def check_compare(
    value: Any, source: str | Path, thresholds: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """A validated ``compare.json``: per strategy, success and median queries per threshold."""
    fields = Fields(source)
    rows: dict[str, dict[str, Any]] = {}
    for name, row in fields.mapping(value, "the record").items():
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


CEILING_FILE = "ceiling.json"
CEILING_FORMAT = "identikit-ceiling"
# What ``ceiling.json`` says is within reach, and the largest shortfall 1 - p that reaches it.
CEILING_REACH = {"reaches_0.99": 1e-2, "reaches_0.9999": 1e-4}


def check_ceiling(value: Any, source: str | Path) -> dict[str, Any]:
    """A validated ``ceiling.json``: the model's name and SHA-256, and per class its shortfall
    (1 - p of the best image, in [0, 1]) and certified gap (>= 0); whether each class reaches
    0.99 and 0.9999 is recomputed from the shortfall rather than trusted."""
    fields = Fields(source)
    record = fields.mapping(value, "the record")
    if record.get("format") != CEILING_FORMAT or record.get("version") != 1:
        fields.fail("the record", f"is not an {CEILING_FORMAT} record of format version 1")
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
    """The validated ``ceiling.json`` of ``folder``."""
    path = folder / CEILING_FILE
    return check_ceiling(read_json(path, root=root), path)
