"""Sweeps: every digit x several runs of one strategy, advanced together as one batch.

``run_sweep`` searches; ``sweep_results`` turns the final state into the ``results.json``
record, which :mod:`identikit.sweeps.folder` writes and reads.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, asdict, dataclass, field, replace
from typing import Any

import torch

from identikit.base.analysis import summarise_runs
from identikit.base.arguments import class_numbers, finite_number, instance_of, whole_number
from identikit.base.errors import IdentikitError
from identikit.base.limits import CANDIDATES, CLASSES, RUNS
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.engines.precision import tf32_in_use
from identikit.models.preprocessing import Preprocessing, Values
from identikit.strategies import (
    STATUS_NAMES,
    Budget,
    Converged,
    SearchState,
    StrategySpec,
    Stuck,
)
from identikit.strategies.base import START_IMAGES, derive_seed, step_cost
from identikit.strategies.stopping import PATIENCE, StoppingRule

# The newest version of results.json this code writes (and reads, in identikit.sweeps.records):
# 2 records the image shape (model.input_shape) and, where they are not identikit's own, the
# model's conventions (model.preprocessing); identikits.npz then holds (N, C, H, W) images
# where C > 1. Version 1 records neither: its sweeps are of MNIST's 1 x 28 x 28.
RESULTS_VERSION = 2


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep searches for and how.

    ``classes`` (or ``digits``, its older name: either may be given, not both) are the
    classes searched; None, the default, means every class of the model, resolved against
    the model by :meth:`for_classes` before the sweep's identity is computed, so that a sweep
    of a 10-class model records ``"digits": [0, ..., 9]`` exactly as when 0-9 was the default.
    The field keeps its recorded name, ``digits``.

    Run r of class d uses seed ``derive_seed(seed, d, r)``, so adding classes or runs to a
    sweep leaves the existing runs' results unchanged.
    """

    digits: tuple[int, ...] | None = None
    runs: int = 10
    strategy: str = "random-masks"
    strategy_settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    target: float = 0.99
    patience: int = PATIENCE  # model queries without gain before a run is stuck
    max_queries: int = 100_000
    start: str = "blank"
    # An argument, not a field: asdict() and so the recorded settings leave it out, and
    # replace() does not pass it again (its value is held in ``digits``).
    classes: InitVar[Sequence[int] | None] = None

    def __post_init__(self, classes: Sequence[int] | None) -> None:
        """Check every field's type and range, as the command line's options are checked,
        before any work: a config is made from Python (the API) as well as from options, and
        a wrong value (``runs=True``, ``seed=1.5``, ``max_queries=inf``) would otherwise run
        the whole sweep and then fail to be recorded or read back. Numbers are kept as Python
        ints and floats (a NumPy integer is taken as its value), so that results.json records
        them as the numbers they are."""
        digits = _chosen_classes(classes, self.digits)
        runs = whole_number(self.runs, "--runs", least=1)
        if digits is not None:  # else checked once the model's classes resolve them
            RUNS.check(len(digits) * runs, f"{len(digits)} classes x --runs {runs}")
        numbers = {
            "digits": digits,
            "runs": runs,
            "seed": whole_number(self.seed, "--seed"),
            "target": finite_number(self.target, "--target"),
            "patience": whole_number(self.patience, "--patience", least=1),
            "max_queries": whole_number(self.max_queries, "--max-queries", least=1),
        }
        for name, value in numbers.items():
            object.__setattr__(self, name, value)  # frozen: set once, here, as checked
        if not 0 < self.target < 1:
            raise IdentikitError(f"--target must be inside (0, 1), got {self.target}")
        if not isinstance(self.start, str) or self.start not in START_IMAGES:
            raise IdentikitError(f"--start must be one of {', '.join(START_IMAGES)}")
        instance_of(self.strategy, str, "--strategy", "a strategy's name")
        settings = instance_of(
            self.strategy_settings, Mapping, "strategy_settings", "a dict of setting: value"
        )
        if not all(isinstance(key, str) for key in settings):
            raise IdentikitError("strategy_settings must be a dict whose keys are names")
        strategy = self.spec.make()  # refuses unknown settings and values of the wrong type
        CANDIDATES.check(strategy.queries_per_step, f"strategy {self.strategy}")

    @property
    def resolved(self) -> bool:
        """Whether the classes searched are known (given, or resolved by :meth:`for_classes`)."""
        return self.digits is not None

    @property
    def targets(self) -> tuple[int, ...]:
        """The classes searched, in order; refused in one line while they are "every class of
        the model" not yet resolved against one, so that no sweep can be laid out, recorded or
        identified without its concrete classes."""
        if self.digits is None:
            raise IdentikitError(
                "the sweep's classes are 'all the model's', not yet resolved: "
                "use config.for_classes(model's number of classes) first"
            )
        return self.digits

    def for_classes(self, count: int) -> SweepConfig:
        """This sweep for a model of ``count`` classes: every one of them where no classes
        were named; the classes named, where each is one of the model's; else a one-line
        error naming the model's number of classes."""
        count = whole_number(count, "the model's number of classes", least=1)
        if self.digits is None:
            CLASSES.check(count, "the model's classes")
            return replace(self, digits=tuple(range(count)))
        outside = sorted(c for c in self.digits if c >= count)
        if outside:
            raise IdentikitError(
                f"classes {outside} are outside the model's {count} classes "
                f"(0 to {count - 1}): choose --classes among them"
            )
        return self

    @property
    def spec(self) -> StrategySpec:
        """The sweep's strategy: build it with ``spec.build(inputs)``."""
        return StrategySpec(self.strategy, self.strategy_settings)

    def rules(self) -> list[StoppingRule]:
        """Converged, then stuck, then out of budget."""
        return [Converged(self.target), Stuck(self.patience), Budget(self.max_queries)]

    def layout(self) -> list[tuple[int, int, int]]:
        """(class, run, seed) of every run, class-major."""
        return [
            (d, r, derive_seed(self.seed, d, r)) for d in self.targets for r in range(self.runs)
        ]


def _chosen_classes(classes: object, digits: object) -> tuple[int, ...] | None:
    """The classes a config was given, as ``classes`` or as ``digits`` (its older name), each
    checked as class numbers; None (every class of the model) where neither was given. Both
    may be given only where they agree."""
    given = {
        name: class_numbers(value, f"--{name}", CLASSES.value)
        for name, value in (("classes", classes), ("digits", digits))
        if value is not None
    }
    if len(set(given.values())) > 1:
        raise IdentikitError(
            f"classes={given['classes']} and digits={given['digits']} differ: give one "
            "(digits is the older name of classes)"
        )
    return next(iter(given.values()), None)


_DIGIT_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
# What --classes says for every class of the model (its default).
ALL_CLASSES = "all"


def parse_classes(text: str | None, option: str = "--classes") -> tuple[int, ...] | None:
    """``"0-9"``, ``"3,7"`` or ``"0-2,7"`` -> sorted distinct class numbers; None or ``"all"``
    -> None, every class of the model (resolved by :meth:`SweepConfig.for_classes`); a
    one-line error naming ``option`` otherwise."""
    if text is None or text.strip().lower() == ALL_CLASSES:
        return None
    digits: set[int] = set()
    for part in text.split(","):
        match = _DIGIT_RANGE.fullmatch(part)
        first = int(match.group(1)) if match else 0
        last = int(match.group(2) or first) if match else -1
        if last < first:
            raise IdentikitError(
                f"{option} {text!r} is malformed: expected e.g. 0-9, 3,7, 0-2,7 or all"
            )
        # Checked before the range is made: "0-99999999999" would fill the memory.
        CLASSES.check(last + 1, f"{option} {text}")
        digits.update(range(first, last + 1))
    return tuple(sorted(digits))


def parse_digits(text: str) -> tuple[int, ...]:
    """``"0-9"``, ``"3,7"`` or ``"0-2,7"`` -> sorted distinct digits; a clear error otherwise
    (:func:`parse_classes` under the option's older name, for a caller that names classes)."""
    classes = parse_classes(text, "--digits")
    if classes is None:
        raise IdentikitError("--digits: name the classes, e.g. 0-9 (all needs the model)")
    return classes


def sweep_settings(config: SweepConfig, shape: ImageShape) -> dict[str, Any]:
    """The sweep's settings as recorded, with every strategy setting made explicit, as the
    strategy takes them for images of ``shape`` (e.g. the square's side, half the shorter side
    unless given)."""
    strategy = config.spec.make().for_shape(shape)
    return {
        **asdict(config),
        "strategy_settings": strategy.settings(),
        # The key every results.json has had: "classes" would make each sweep another.
        "digits": list(config.targets),
    }


def sweep_identity(classifier: Classifier, config: SweepConfig) -> dict[str, Any]:
    """What makes two sweeps the same: their settings, the model's hash, and, where they are
    not identikit's own, the model's conventions with its image shape. A model's hash fixes
    neither: an ONNX or TorchScript file takes whatever ``--input-range``, ``--mean``,
    ``--std``, ``--layout`` and (for a dynamic input) ``--input-shape`` say, and a search under
    other conventions is another search. A config of every class is first resolved against
    the model, so that its identity names the classes, exactly as one that names them."""
    config = config.for_classes(classifier.num_classes)
    identity: dict[str, Any] = {
        "settings": sweep_settings(config, classifier.info.input_shape),
        "model_sha256": classifier.sha256,
    }
    if classifier.precision != "fp32":  # bf16 ranks candidates differently: another search
        identity["precision"] = classifier.precision
    conventions = identity_conventions(classifier.preprocessing, classifier.info.input_shape)
    if conventions is not None:
        identity["conventions"] = conventions
    return dict(json.loads(json.dumps(identity)))  # as it reads back from JSON


def identity_conventions(preprocessing: Preprocessing, shape: ImageShape) -> dict[str, Any] | None:
    """The conventions a sweep's identity records, exactly (each mean and std as the floats
    they are), with the image shape; None where they are identikit's own (as
    :func:`recorded_conventions` says), so that such a sweep's identity is the very one it
    always was, and folders saved before conventions were recorded still resume."""
    if recorded_conventions(preprocessing) is None:
        return None
    return {
        "input_range": preprocessing.input_range,
        "mean": _as_list(preprocessing.mean),
        "std": _as_list(preprocessing.std),
        "layout": preprocessing.layout or "nchw",
        "outputs": preprocessing.outputs,
        "input_shape": list(shape.dims),
    }


def results_identity(results: dict[str, Any]) -> dict[str, Any]:
    """The identity of the sweep a ``results.json`` record describes (for a folder whose state
    is gone): its settings, model hash, precision, and the conventions the record names (in
    :meth:`Preprocessing.describe`'s words, means and stds to six significant digits)."""
    model = results.get("model", {})
    identity: dict[str, Any] = {
        "settings": results.get("settings"),
        "model_sha256": model.get("sha256"),
        "precision": results.get("scoring", {}).get("precision", "fp32"),
    }
    described = model.get("preprocessing")
    if described is not None:
        identity["conventions"] = {"described": described, "input_shape": model.get("input_shape")}
    return identity


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two sweep identities, e.g. ``--runs: 5 -> 10`` or
    ``--mean: 0.5,0.45,0.4 -> 0.1``."""
    # Means and stds are compared exactly, unless one side knows them only as a results.json
    # record describes them (six significant digits): then both sides at that precision.
    exact = not (_described(saved) or _described(current))
    before, after = _flat_identity(saved, exact), _flat_identity(current, exact)
    keys = set(before) | set(after)
    # Identikit's own conventions leave the kind of outputs and the image shape unrecorded
    # (the model's hash fixes the shape of all but a few models): they are compared where
    # both sides record them.
    keys -= {k for k in ("outputs", "input_shape") if k not in before or k not in after}
    return [
        f"--{key.replace('_', '-')}: {before.get(key)} -> {after.get(key)}"
        for key in sorted(keys)
        if before.get(key) != after.get(key)
    ]


_CONVENTIONS = ("input_range", "mean", "std", "layout", "outputs", "input_shape")
# The words of Preprocessing.describe() ("pixels 0,1; mean 0.5; std 0.25; layout nchw") and
# the conventions they name.
_DESCRIBED = {"pixels": "input_range", "mean": "mean", "std": "std", "layout": "layout"}
_DESCRIBED_OUTPUTS = "outputs"


def _flat_identity(identity: dict[str, Any], exact: bool) -> dict[str, Any]:
    """An identity as one mapping of option names (``runs``, ``candidates``, ``mean``) to
    values, conventions written as the options write them. A saved identity is read as it
    is, whatever it holds: an edited one shows as differences, never as an error here."""
    settings = identity.get("settings")
    out = dict(settings) if isinstance(settings, dict) else {}
    strategy_settings = out.pop("strategy_settings", {})
    out.update(strategy_settings if isinstance(strategy_settings, dict) else {})
    out["model"] = identity.get("model_sha256")
    out["precision"] = identity.get("precision", "fp32")
    out.update(_convention_texts(identity.get("conventions"), exact))
    return out


def _convention_texts(conventions: object, exact: bool) -> dict[str, str]:
    """Conventions as the options write them (``{"mean": "0.5,0.45,0.4", "layout": "nchw",
    "input_shape": "3,32,32", ...}``); identikit's own where an identity records none."""
    if not isinstance(conventions, dict):
        own = Preprocessing()
        conventions = {
            "input_range": own.input_range,
            "mean": _as_list(own.mean),
            "std": _as_list(own.std),
            "layout": "nchw",
        }
    elif "described" in conventions:
        conventions = {**_parse_described(conventions["described"]), **conventions}
    return {
        key: _values_text(value, exact) if key in ("mean", "std") else _text(value)
        for key, value in conventions.items()
        if key in _CONVENTIONS
    }


def _described(identity: dict[str, Any]) -> bool:
    conventions = identity.get("conventions")
    return isinstance(conventions, dict) and "described" in conventions


def _parse_described(text: object) -> dict[str, Any]:
    """The conventions :meth:`Preprocessing.describe` wrote as ``text`` (means and stds as
    written; identikit's own where it names none, as describe() leaves them out)."""
    own = Preprocessing()
    parsed: dict[str, Any] = {"mean": _as_list(own.mean), "std": _as_list(own.std)}
    for part in str(text).split(";"):
        word, _, value = part.strip().partition(" ")
        if word in _DESCRIBED:
            parsed[_DESCRIBED[word]] = value
        elif word == _DESCRIBED_OUTPUTS:
            parsed["outputs"] = value
    return parsed


def _as_list(values: Values) -> list[float]:
    """A mean or std as a list: one value, or one per channel."""
    return list(values) if isinstance(values, tuple) else [values]


def _values_text(values: object, exact: bool) -> str:
    """A mean or std as the options write it: every float in full (``exact``: the shortest
    text that reads back as it) or to six significant digits, as results.json records it."""
    items: list[Any] = values.split(",") if isinstance(values, str) else _listed(values)
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return str(values)  # an edited identity: shown, and differs
    return ",".join(repr(n) if exact else f"{n:g}" for n in numbers)


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _text(value: object) -> str:
    """A convention's value as an option writes it: an image shape ``3,32,32``."""
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def recorded_conventions(preprocessing: Preprocessing) -> str | None:
    """The conventions results record: None where they are identikit's own (pixels in [0, 1]
    given as they are), so that a sweep of such a model records the same bytes whatever words
    describe them."""
    described = preprocessing.describe()
    default = replace(Preprocessing(), outputs=preprocessing.outputs).describe()
    return None if described == default else described


def _model_record(classifier: Classifier, model_path: str | None) -> dict[str, Any]:
    """What results.json says of the model: file, hash, classes, shape, conventions, card."""
    conventions = recorded_conventions(classifier.preprocessing)
    return {
        "path": model_path,
        "name": classifier.name,
        "sha256": classifier.sha256,
        "classes": classifier.num_classes,
        "class_names": classifier.class_names,
        "input_shape": list(classifier.info.input_shape.dims),
        **({"preprocessing": conventions} if conventions is not None else {}),
        "card": classifier.card,
    }


def sweep_results(
    classifier: Classifier,
    config: SweepConfig,
    state: SearchState,
    *,
    seconds: float,
    model_path: str | None = None,
    engines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``results.json`` record of a finished sweep; ``engines`` lists every engine that
    scored it (more than one only where a resumed sweep was allowed to change engine)."""
    config = config.for_classes(classifier.num_classes)  # every class: the model's
    runs = []
    for i, (digit, run, seed) in enumerate(config.layout()):
        runs.append(
            {
                "digit": digit,
                "run": run,
                "seed": seed,
                "confidence": float(state.confidences[i]),
                "status": STATUS_NAMES[int(state.status[i])],
                "iterations": int(state.iterations[i]),
                "queries": int(state.queries[i]),
                "history": state.history[i],
            }
        )
    total_queries = int(state.queries.sum())
    return {
        "format": "identikit-sweep",
        "version": RESULTS_VERSION,
        "settings": sweep_settings(config, classifier.info.input_shape),
        "model": _model_record(classifier, model_path),
        "environment": {
            "torch": str(torch.__version__),
            "device": str(classifier.device),
            "python": platform.python_version(),
            # On a GPU: whether float32 ran as TF32 (never, since Classifier sets IEEE).
            **(
                {"tf32": tf32_in_use(classifier.device)} if classifier.device.type == "cuda" else {}
            ),
        },
        "scoring": classifier.choice.record(),
        **({"engines": engines} if engines else {}),
        # Whether the search read any data (its priors' inputs): a data-free run reads the
        # model alone, and `identikit reconstruct` enforces it (base.data_free).
        "uses_data": config.spec.needs().data,
        # How the runs were grouped, where a strategy draws them together (batch statistics):
        # none for runs that are independent.
        **_grouping(config, classifier, len(runs)),
        "queries_per_step": step_cost(config.spec.make(), classifier),
        "seconds": round(seconds, 3),
        "total_queries": total_queries,
        "queries_per_second": round(total_queries / seconds, 1) if seconds > 0 else None,
        "summary": summarise_runs(runs, config.targets),
        "runs": runs,
    }


def _grouping(config: SweepConfig, classifier: Classifier, runs: int) -> dict[str, str]:
    """``{"grouping": how}`` where the sweep's strategy draws its ``runs`` runs in batches
    (:meth:`~identikit.strategies.base.Strategy.grouping`); empty where runs are independent."""
    how = config.spec.make().for_shape(classifier.info.input_shape).grouping(runs)
    return {} if how is None else {"grouping": how}
