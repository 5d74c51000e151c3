"""Strategy settings: every out-of-range, non-finite or ill-typed one is refused in one line naming
its option, and options are parsed by their declared type."""

from __future__ import annotations

import re
from typing import Any

import pytest

from identikit.base.errors import IdentikitError
from identikit.strategies import (
    STRATEGIES,
)
from identikit.strategies.evolution import Evolution
from identikit.strategies.registry import make_strategy, option_name, parse_option, setting_types
from tests.helpers import INF, NAN

# (strategy, settings, what the message must name)
BAD_SETTINGS = [
    ("evolution", {"sigma": NAN}, "--option sigma"),
    ("evolution", {"sigma": INF}, "--option sigma"),
    ("evolution", {"min_sigma": NAN}, "--option min_sigma"),
    ("evolution", {"max_sigma": INF}, "--option max_sigma"),
    ("evolution", {"min_sigma": 0.5, "max_sigma": 0.1}, "--option max_sigma"),
    ("evolution", {"candidates": True}, "candidates"),
    ("strokes", {"width": NAN}, "--option width"),
    ("strokes", {"max_length": INF}, "--option max_length"),
    ("strokes", {"min_length": NAN}, "--option min_length"),
    ("strokes", {"max_length": 1e300}, "--option max_length"),
    ("gradient", {"lr": NAN}, "--option lr"),
    ("gradient", {"tv_weight": INF}, "--option tv_weight"),
    ("gradient", {"l2_weight": NAN}, "--option l2_weight"),
    ("gradient", {"manifold_weight": -INF}, "--option manifold_weight"),
    ("gradient", {"blur_sigma": NAN}, "--option blur_sigma"),
    ("gradient", {"blur_sigma": 0.0}, "--option blur_sigma"),
    ("gradient", {"manifold_components": 0}, "--option manifold_components"),
    ("square", {"side": -1}, "--option side"),
    ("square", {"side": 1.5}, "--option side"),
    ("square", {"schedule_queries": 0}, "--option schedule_queries"),
    ("random-masks", {"candidates": 2.0}, "--candidates"),
]


@pytest.mark.parametrize(("strategy", "settings", "named"), BAD_SETTINGS)
def test_bad_strategy_settings_are_refused(
    strategy: str, settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(IdentikitError, match=re.escape(named)) as caught:
        make_strategy(strategy, **settings)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_float_setting_of_every_strategy_must_be_finite(strategy: str) -> None:
    floats = [k for k, kind in setting_types(STRATEGIES[strategy]).items() if kind is float]
    assert floats, f"{strategy} has no float setting to test"
    for key in floats:
        for value in (NAN, INF, -INF):
            with pytest.raises(IdentikitError, match=re.escape(option_name(key))):
                make_strategy(strategy, **{key: value})


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_class_constants_are_not_settings(strategy: str) -> None:
    settings = setting_types(STRATEGIES[strategy])
    assert "name" not in settings and "white_box" not in settings
    for constant in ("name=foo", "white_box=true"):
        with pytest.raises(IdentikitError, match="--option"):
            parse_option(strategy, constant)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(IdentikitError, match="--option sigma must be a finite number"):
        Evolution(sigma=NAN)


@pytest.mark.parametrize(
    ("strategy", "option", "named"),
    [
        ("square", "side=1.5", "--option side"),
        ("evolution", "candidates=True", "--option candidates"),
        ("gradient", "lr=fast", "--option lr"),
    ],
)
def test_options_are_parsed_by_their_declared_type(strategy: str, option: str, named: str) -> None:
    with pytest.raises(IdentikitError, match=re.escape(named)):
        parse_option(strategy, option)


def test_parse_option_types() -> None:
    assert parse_option("square", "side=10") == ("side", 10)
    assert parse_option("gradient", "lr=0.5") == ("lr", 0.5)
    assert parse_option("gradient", "objective=margin") == ("objective", "margin")
    for bad in ("side", "nope=1", "side=big"):
        with pytest.raises(IdentikitError, match="--option"):
            parse_option("square", bad)


def test_unknown_strategy() -> None:
    with pytest.raises(IdentikitError, match="unknown strategy 'magic'"):
        make_strategy("magic")
