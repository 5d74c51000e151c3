"""Registry of search strategies: a new strategy is one module and one ``@register`` line.

A strategy's settings are its dataclass fields, and only those: ``name``, ``white_box`` and
``source`` (where the method comes from) are class constants, and a field marked as a prior
input (what the caller gives its priors from the training data) is no setting. Every setting is
checked here against its declared type, and every ``float`` setting must be finite, so a
strategy's own ``__post_init__`` checks only its ranges. Errors name a setting as the user gives it:
``--option sigma``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from identikit.base.errors import IdentikitError
from identikit.base.values import is_finite, is_number, is_whole
from identikit.strategies.base import Strategy
from identikit.strategies.priors import PRIOR_INPUT, PriorInputs, PriorNeeds

StrategyType = TypeVar("StrategyType", bound=type)

STRATEGIES: dict[str, type] = {}

NO_INPUTS = PriorInputs()

# Settings that the search command also takes as flags of their own (--mask-density).
FLAG_SETTINGS = ("candidates", "mask_density", "mask_amplitude")

_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def is_white_box(name: str) -> bool:
    """Whether the strategy ``name`` reads the model's gradients (unknown names: no)."""
    return bool(getattr(STRATEGIES.get(name), "white_box", False))


def register(cls: StrategyType) -> StrategyType:
    """Class decorator: add a :class:`~identikit.strategies.base.Strategy` under its ``name``."""
    STRATEGIES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def setting_types(cls: type | None) -> dict[str, Any]:
    """Each setting of a strategy class and its declared type, in declaration order."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return {}
    # The module imports annotations lazily (PEP 563): resolve "float" to float.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.metadata != PRIOR_INPUT}


def option_name(key: str) -> str:
    """How a user sets ``key``: ``--option sigma``, or also a flag for the FLAG_SETTINGS."""
    if key in FLAG_SETTINGS:
        return f"--{key.replace('_', '-')} (or --option {key})"
    return f"--option {key}"


def setting_error(strategy: str, key: str, expected: str, value: Any) -> IdentikitError:
    """The one-line error for a setting outside its range: what was expected, what came."""
    return IdentikitError(f"{strategy}: {option_name(key)} must be {expected}, got {value!r}")


def check_value(strategy: str, key: str, kind: Any, value: Any) -> None:
    """Refuse ``value`` unless it is of the setting's type (an int passes for a float) and,
    for a float, finite: nan and inf compare false with every bound, so range checks alone
    would let them through."""
    if kind is float:
        if is_number(value) and not is_finite(value):
            raise setting_error(strategy, key, "a finite number", value)
        ok = is_number(value)
    elif kind is int:
        ok = is_whole(value)
    else:
        ok = isinstance(kind, type) and isinstance(value, kind)
    if not ok:
        raise setting_error(strategy, key, _KIND_WORDS.get(kind, str(kind)), value)


def check_settings(strategy: Any) -> None:
    """Check every setting of a strategy instance against its type (see :func:`check_value`)."""
    for key, kind in setting_types(type(strategy)).items():
        check_value(strategy.name, key, kind, getattr(strategy, key))


def describe_strategy(name: str) -> dict[str, Any]:
    """What ``identikit strategies`` shows of a strategy: its one-line description (the first
    line of its class docstring), source, and every setting with its type and default."""
    cls = STRATEGIES[name]
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return {
        "name": name,
        "white_box": bool(cls.white_box),  # type: ignore[attr-defined]
        "description": next(iter((cls.__doc__ or "").strip().splitlines()), ""),
        "source": cls.source,  # type: ignore[attr-defined]
        "options": [
            {"name": key, "type": getattr(kind, "__name__", str(kind)), "default": defaults[key]}
            for key, kind in setting_types(cls).items()
        ],
    }


def make_strategy(name: str, **settings: Any) -> Any:
    """An instance of the strategy ``name`` with the given settings (others at their defaults)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise IdentikitError(f"unknown strategy {name!r}; known: {known}") from None
    types = setting_types(cls)
    unknown = sorted(set(settings) - set(types))
    if unknown:
        options = ", ".join("--" + u.replace("_", "-") for u in unknown)
        raise IdentikitError(f"strategy {name!r} takes no {options}")
    # Types first: a strategy's range checks cannot compare a string with a number.
    for key, value in settings.items():
        check_value(name, key, types[key], value)
    return cls(**settings)


@dataclass(frozen=True)
class StrategySpec:
    """A strategy as a sweep records it: its name and the settings given (the others at their
    defaults). The one way to make a sweep's strategy."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def make(self) -> Strategy:
        """The strategy, its settings checked; its priors not yet given their inputs (enough to
        read its settings and costs)."""
        strategy: Strategy = make_strategy(self.name, **self.settings)
        return strategy

    def needs(self) -> PriorNeeds:
        """What the strategy's priors must be given from the training data."""
        return self.make().needs()

    def build(self, inputs: PriorInputs = NO_INPUTS) -> Strategy:
        """The strategy ready to search, given ``inputs``; refused when they lack what its
        priors need."""
        return self.make().with_inputs(inputs)


def parse_option(strategy: str, text: str) -> tuple[str, Any]:
    """``"side=10"`` -> ("side", 10), typed by the strategy's declaration of that setting."""
    name, sep, raw = text.partition("=")
    key = name.strip().replace("-", "_")
    types = setting_types(STRATEGIES.get(strategy))
    if not sep or key not in types:
        known = ", ".join(sorted(types)) or "none"
        raise IdentikitError(f"--option {text!r}: expected NAME=VALUE with NAME one of {known}")
    kind, value = types[key], raw.strip()
    if kind is str:
        return key, value
    if kind is bool and value.lower() in _TRUE + _FALSE:
        return key, value.lower() in _TRUE
    try:
        if kind in (int, float):
            return key, kind(value)
    except ValueError:
        pass
    raise setting_error(strategy, key, _KIND_WORDS.get(kind, str(kind)), value)


def require(strategy: Any, key: str, ok: bool, expected: str) -> None:
    """Refuse the strategy's setting ``key`` unless ``ok``; ``expected`` says what it must be."""
    if not ok:
        raise setting_error(strategy.name, key, expected, getattr(strategy, key))
