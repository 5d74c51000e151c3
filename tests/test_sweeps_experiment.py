"""A sweep's settings: the digits a user names, and every field of a SweepConfig checked where
it is made."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from identikit.base.errors import IdentikitError
from identikit.data.datasets import MNIST_SHAPE
from identikit.sweeps.experiment import SweepConfig, parse_classes, parse_digits, sweep_settings


def test_parse_digits() -> None:
    assert parse_digits("0-9") == tuple(range(10))
    assert parse_digits("7, 3,3") == (3, 7)
    assert parse_digits("0-2,7") == (0, 1, 2, 7)
    for bad in ("", "a", "3-1", "-1", "1-"):
        with pytest.raises(IdentikitError, match="malformed"):
            parse_digits(bad)


# A small valid config; each case below changes one field of it.
VALID: dict[str, object] = {"digits": (0, 3), "runs": 2, "max_queries": 300}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_queries": math.inf}, "--max-queries must be a whole number, got inf"),
        ({"max_queries": 1500.0}, "--max-queries must be a whole number, got 1500.0"),
        ({"patience": math.nan}, "--patience must be a whole number, got nan"),
        ({"target": math.nan}, "--target must be a finite number, got nan"),
        ({"target": "0.5"}, "--target must be a finite number, got '0.5'"),
        ({"runs": "3"}, "--runs must be a whole number, got '3'"),
        ({"runs": True}, "--runs must be a whole number, got True"),
        ({"runs": 0}, "--runs must be at least 1, got 0"),
        ({"seed": 1.5}, "--seed must be a whole number, got 1.5"),
        ({"digits": "37"}, "--digits must be a sequence of class numbers such as (3, 7), got '37'"),
        ({"digits": (3.5,)}, "--digits must hold whole numbers, got 3.5"),
        ({"digits": (True,)}, "--digits must hold whole numbers, got True"),
        ({"digits": {1, 2}}, "--digits must be a sequence of class numbers"),
        ({"digits": ()}, "--digits: no classes to search for"),
        ({"digits": (-1,)}, "--digits: [-1] are not class numbers"),
        ({"digits": (3, 3)}, "--digits names [3] more than once"),
        ({"digits": range(10**12)}, "more than the 100,000 there are"),
        ({"strategy": None}, "--strategy must be a strategy's name, got None"),
        ({"strategy_settings": None}, "strategy_settings must be a dict of setting: value"),
        ({"start": None}, "--start must be one of blank, gray, noise"),
    ],
)
def test_a_config_refuses_what_the_command_line_refuses(
    change: dict[str, object], message: str
) -> None:
    """Each field is checked where the config is made, in the command line's words: before,
    wrong types raised TypeError, and runs=True, seed=1.5 or max_queries=inf ran the whole
    sweep and then failed to record it (results.json "damaged or edited", or JSON's inf)."""
    with pytest.raises(IdentikitError) as caught:
        SweepConfig(**{**VALID, **change})  # type: ignore[arg-type]
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_config_keeps_python_numbers() -> None:
    """NumPy's numbers (a notebook's ``np.arange``) are taken as their values, and kept as
    Python ints and floats, so that results.json records them as the numbers they are."""
    numbers: dict[str, Any] = {
        "digits": np.arange(3),
        "runs": np.int64(2),
        "target": np.float64(0.9),
    }
    config = SweepConfig(**numbers, max_queries=300)
    assert config.digits == (0, 1, 2) and type(config.digits[0]) is int
    assert type(config.runs) is int and type(config.target) is float
    assert config == SweepConfig(digits=(0, 1, 2), runs=2, target=0.9, max_queries=300)
    listed: Any = [7, 3]
    assert SweepConfig(digits=listed, seed=-4).digits == (7, 3)  # any order, any seed


def test_classes_none_means_every_class_of_the_model() -> None:
    """Issue 29: a config's classes default to None, every class of the model; for_classes
    resolves them against the model's number of classes into the concrete tuple."""
    config = SweepConfig(runs=1)
    assert config.digits is None and not config.resolved
    assert SweepConfig(classes=None, runs=1) == config
    assert config.for_classes(5).digits == (0, 1, 2, 3, 4)
    assert config.for_classes(12).targets == tuple(range(12))
    assert len(config.for_classes(1000).layout()) == 1000
    named = SweepConfig(classes=(0, 3), runs=1)
    assert named.for_classes(5) is named  # named classes stay as named


def test_classes_and_digits_are_one_setting() -> None:
    assert SweepConfig(classes=(0, 3)) == SweepConfig(digits=(0, 3))
    assert SweepConfig(classes=[0, 3], digits=(0, 3)).digits == (0, 3)
    with pytest.raises(IdentikitError, match="differ: give one"):
        SweepConfig(classes=(0, 3), digits=(1,))
    with pytest.raises(IdentikitError, match="--classes must hold whole numbers"):
        SweepConfig(classes=(0.5,))  # type: ignore[arg-type]
    # replace() keeps working on the field (classes is an argument, not a field)
    assert replace(SweepConfig(classes=(1, 2)), digits=(4,)).digits == (4,)


def test_unresolved_classes_never_reach_the_identity() -> None:
    """A config of 'every class' cannot be laid out, recorded or identified before the model
    resolves it: the sweep's identity always names the concrete classes."""
    config = SweepConfig(runs=1)
    for attempt in (config.layout, lambda: sweep_settings(config, MNIST_SHAPE)):
        with pytest.raises(IdentikitError, match="not yet resolved"):
            attempt()


def test_every_class_of_a_10_class_model_is_the_old_default_exactly() -> None:
    """The recorded settings of a default sweep of a 10-class model are those 0-9, the old
    default, recorded: same key, same values, same order, so that its identity (and every
    folder saved before) is unchanged."""
    resolved = sweep_settings(SweepConfig().for_classes(10), MNIST_SHAPE)
    old = sweep_settings(SweepConfig(digits=tuple(range(10))), MNIST_SHAPE)
    assert json.dumps(resolved) == json.dumps(old)
    assert next(iter(resolved)) == "digits" and resolved["digits"] == list(range(10))
    assert "classes" not in resolved


def test_a_class_the_model_lacks_names_its_class_count() -> None:
    with pytest.raises(IdentikitError) as error:
        SweepConfig(classes=(3, 12)).for_classes(10)
    assert str(error.value) == (
        "classes [12] are outside the model's 10 classes (0 to 9): choose --classes among them"
    )


def test_parse_classes_takes_all() -> None:
    assert parse_classes("all") is None and parse_classes(None) is None
    assert parse_classes("0,3") == (0, 3)
    with pytest.raises(IdentikitError, match="--classes 'x' is malformed"):
        parse_classes("x")
    with pytest.raises(IdentikitError, match="--digits 'x' is malformed"):
        parse_digits("x")
