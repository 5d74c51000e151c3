"""Registry of search strategies: a new strategy is one module and one ``@register`` line."""

from __future__ import annotations

from typing import Any, TypeVar

from identikit.errors import IdentikitError

StrategyType = TypeVar("StrategyType", bound=type)

STRATEGIES: dict[str, type] = {}


def register(cls: StrategyType) -> StrategyType:
    """Class decorator: add a :class:`~identikit.search.base.Strategy` under its ``name``."""
    STRATEGIES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def make_strategy(name: str, **settings: Any) -> Any:
    """An instance of the strategy ``name`` with the given settings (others at their defaults)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise IdentikitError(f"unknown strategy {name!r}; known: {known}") from None
    fields = set(getattr(cls, "__dataclass_fields__", {}))
    unknown = sorted(set(settings) - fields)
    if unknown:
        options = ", ".join("--" + u.replace("_", "-") for u in unknown)
        raise IdentikitError(f"strategy {name!r} takes no {options}")
    return cls(**settings)


def parse_option(strategy: str, text: str) -> tuple[str, Any]:
    """``"side=10"`` -> ("side", 10), typed like the strategy's own default for that setting."""
    name, sep, raw = text.partition("=")
    key = name.strip().replace("-", "_")
    cls = STRATEGIES.get(strategy)
    fields = getattr(cls, "__dataclass_fields__", {})
    if not sep or key not in fields:
        known = ", ".join(sorted(fields)) or "none"
        raise IdentikitError(f"--option {text!r}: expected NAME=VALUE with NAME one of {known}")
    kind = type(fields[key].default)
    try:
        return key, kind(raw.strip()) if kind is not str else raw.strip()
    except ValueError:
        raise IdentikitError(f"--option {text!r}: {raw!r} is not a valid {kind.__name__}") from None
