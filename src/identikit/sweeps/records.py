"""The validating reader of a sweep's record: ``results.json`` and ``identikits.npz``.

A folder may come from a colleague, a crashed disk or a hostile hand, so the reader checks every
field its users read (types, ranges, lengths, agreement between files) and answers with a plain
value or an :class:`~identikit.base.errors.IdentikitError` naming the file and the field;
nothing downstream meets a ``KeyError`` or a list where a number should be. Files are read
through :mod:`identikit.base.safe_files` (regular files only, sizes bounded). Summaries that can
be recomputed from the runs are recomputed rather than trusted. :class:`Fields` and
:func:`check_version` are shared with the readers of the other records
(:mod:`identikit.sweeps.result_files`); the folder as one value is
:mod:`identikit.sweeps.folder`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from identikit.base.analysis import summarise_runs
from identikit.base.errors import IdentikitError
from identikit.base.limits import CLASSES
from identikit.base.safe_files import read_json, read_npz
from identikit.base.shapes import ImageShape
from identikit.base.values import is_finite, is_number, is_whole
from identikit.data.datasets import MNIST_SHAPE
from identikit.strategies import STATUS_NAMES
from identikit.sweeps.experiment import RESULTS_VERSION, SweepConfig

RESULTS_FILE = "results.json"
IDENTIKITS_FILE = "identikits.npz"
RESULTS_FORMAT = "identikit-sweep"
# The shape of a sweep whose results.json predates version 2: every model searched then took
# MNIST's images.
SWEEP_SHAPE = MNIST_SHAPE
_LONGEST_DIM = 1 << 16  # channels or pixels a side of a recorded shape: past it, a damaged file


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


def check_version(record: dict[str, Any], fields: Fields, newest: int) -> int:
    """The format version of ``record``: 1 where it has none (written before versions were
    recorded); a version above ``newest``, the newest this code knows, is refused in one line
    that says a newer identikit wrote the file."""
    version = fields.integer(record.get("version", 1), "version")
    if version < 1:  # no identikit writes it: not a file to read as any version
        fields.fail("version", f"= {version} is out of range: identikit writes 1 to {newest}")
    if version > newest:
        raise IdentikitError(
            f"{fields.source} was written by a newer identikit (format version {version}, "
            f"this one reads up to {newest}): upgrade identikit to read it"
        )
    return version


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
    return checked_results(value, source)[0]


def checked_results(value: Any, source: str | Path) -> tuple[dict[str, Any], SweepConfig]:
    """A validated ``results.json`` record and the :class:`SweepConfig` its settings describe.

    results.json has always carried its format and version, so one without them is damaged.
    """
    fields = Fields(source)
    record = fields.mapping(value, "the record")
    if record.get("format") != RESULTS_FORMAT or "version" not in record:
        fields.fail("the record", f"is not an {RESULTS_FORMAT} record with a format version")
    version = check_version(record, fields, RESULTS_VERSION)
    config = sweep_config(fields.mapping(record.get("settings"), "settings"), fields)
    model = fields.mapping(record.get("model"), "model")
    if version >= 2 or "input_shape" in model:
        _check_shape(fields, model.get("input_shape"))
    fields.optional_text(model.get("preprocessing"), "model.preprocessing")
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
    if max(config.targets) >= classes:
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
    return {**record, "summary": summarise_runs(runs, config.targets)}, config


def _check_shape(fields: Fields, value: Any) -> ImageShape:
    dims = fields.sequence(value, "model.input_shape", 3)
    for i, dim in enumerate(dims):
        fields.integer(dim, f"model.input_shape[{i}]", 1, _LONGEST_DIM)
    return ImageShape.of(dims)


def sweep_shape(results: dict[str, Any]) -> ImageShape:
    """The image shape of a validated results record: the one it records, or MNIST's for a
    record written before shapes were recorded (format version 1)."""
    dims = results["model"].get("input_shape")
    return SWEEP_SHAPE if dims is None else ImageShape.of(dims)


def identikit_dims(shape: ImageShape, count: int) -> tuple[int, ...]:
    """The shape of ``count`` identikits in identikits.npz: (N, H, W) for grey images (the one
    channel implied, as before colour), (N, C, H, W) otherwise."""
    if shape.channels == 1:
        return (count, shape.height, shape.width)
    return shape.batch(count)


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
    folder: Path,
    results: dict[str, Any],
    *,
    root: Path | None = None,
    shape: ImageShape | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 in [0, 1], one per run, (N, H, W) grey or (N, C, H, W), and digits (N,),
    checked against ``results``; ``shape``: the image shape the caller expects (None: the one
    ``results`` records)."""
    path = folder / IDENTIKITS_FILE
    recorded = sweep_shape(results)
    if shape is not None and shape != recorded:
        raise IdentikitError(
            f"{path}: the identikits are {recorded} images (as {RESULTS_FILE} records), "
            f"not {shape} as expected"
        )
    arrays = read_npz(path, root=root)
    fields = Fields(path)
    if "images" not in arrays or "digits" not in arrays:
        fields.fail("the archive", "lacks the arrays 'images' and 'digits'")
    images, digits = arrays["images"], arrays["digits"]
    expected = [run["digit"] for run in results["runs"]]
    wanted = identikit_dims(recorded, len(expected))
    if images.dtype.kind != "f" or images.shape != wanted:
        fields.fail(
            "images", f"have shape {images.shape} ({images.dtype}), expected {wanted} floats"
        )
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        fields.fail("images", "are not pixels in [0, 1]")
    if digits.dtype.kind not in "iu" or digits.tolist() != expected:
        fields.fail("digits", "do not match the runs of results.json")
    return images.astype(np.float32), digits.astype(np.int64)
