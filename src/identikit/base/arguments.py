"""Checks of the values a caller hands identikit, with the command line's one-line messages.

The command line's options reach identikit through argparse, which types them; the Python API
(``identikit.search(...)``, ``SweepConfig(...)``) takes whatever a notebook passes. Python lets
``True`` stand for 1, ``"37"`` be iterated as the classes 3 and 7, and nan pass every range
check, so that a wrong value would run for minutes and then fail somewhere else (a results file
blamed as "damaged", JSON refusing inf). Each value is therefore checked here once, where it is
made, and refused as an :class:`~identikit.base.errors.IdentikitError` naming it, in the words
of the command line's own messages ("must be a whole number", "an empty path is not an output").
"""

from __future__ import annotations

import math
import operator
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, SupportsIndex, TypeVar, cast

from identikit.base.errors import IdentikitError

T = TypeVar("T")

# The longest shown copy of a refused value: a caller may hand a whole array by mistake.
SHOWN = 60


def shown(value: object) -> str:
    """``value`` as a message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def whole_number(value: object, name: str, least: int | None = None) -> int:
    """``value`` as a Python int: an int or a NumPy integer, never a bool (``True`` is 1 to
    Python, but not a count anyone means), a float (``1.5`` would be recorded and read back as
    a damaged file) or a string; at least ``least`` where given."""
    number = _index(value)
    if number is None:
        raise IdentikitError(f"{name} must be a whole number, got {shown(value)}")
    if least is not None and number < least:
        raise IdentikitError(f"{name} must be at least {least}, got {number}")
    return int(number)


def _index(value: object) -> int | None:
    """``value`` as an int where it is one (``__index__``, as NumPy's integers have); None
    for a bool or anything else."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        return None
    try:
        return operator.index(cast(SupportsIndex, value))
    except TypeError:  # an array of several numbers, a NumPy bool
        return None


def finite_number(value: object, name: str) -> float:
    """``value`` as a finite float: an int or a float (NumPy's too), not a bool, nan or inf
    (nan compares false with every bound, so a range check alone lets it through)."""
    if isinstance(value, bool) or not _is_real(value):
        raise IdentikitError(f"{name} must be a finite number, got {shown(value)}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        number = math.inf
    if not math.isfinite(number):
        raise IdentikitError(f"{name} must be a finite number, got {shown(value)}")
    return number


def _is_real(value: object) -> bool:
    """An int, a float or a NumPy scalar (``np.float32(0.5)``): its type has ``__float__``,
    which a string lacks (``float("0.5")`` would silently parse text)."""
    return hasattr(type(value), "__float__") and not isinstance(value, str | bytes | complex)


def class_numbers(value: object, name: str, limit: int) -> tuple[int, ...]:
    """``value`` as a tuple of distinct class numbers in [0, ``limit``): a sequence (a tuple,
    list, range or 1-D array) of whole numbers. A string is refused, not iterated: ``"37"``
    is not the classes 3 and 7."""
    if isinstance(value, str | bytes) or not _is_sequence(value):
        raise IdentikitError(
            f"{name} must be a sequence of class numbers such as (3, 7), got {shown(value)}"
        )
    items = cast(Sequence[object], value)  # a 1-D array has len() and iterates as one
    if len(items) > limit:
        # Before the items are read: range(10**12) would fill the memory as a tuple.
        raise IdentikitError(f"{name}: {len(items):,} classes, more than the {limit:,} there are")
    numbers: list[int] = []
    for item in items:
        number = _index(item)
        if number is None:
            raise IdentikitError(f"{name} must hold whole numbers, got {shown(item)}")
        numbers.append(number)
    if not numbers:
        raise IdentikitError(f"{name}: no classes to search for")
    outside = sorted({n for n in numbers if not 0 <= n < limit})
    if outside:
        raise IdentikitError(f"{name}: {outside} are not class numbers (0 to {limit - 1})")
    repeated = sorted(n for n, count in Counter(numbers).items() if count > 1)
    if repeated:
        raise IdentikitError(f"{name} names {repeated} more than once; name each class once")
    return tuple(numbers)


def _is_sequence(value: object) -> bool:
    """A tuple, list, range or other sequence, or a 1-D array (it has ``ndim`` 1)."""
    return isinstance(value, Sequence) or getattr(value, "ndim", None) == 1


def path_argument(value: object, name: str, what: str = "a file or folder") -> Path:
    """``value`` as a Path: a non-empty ``str`` or ``os.PathLike`` naming ``what`` (for the
    message). An empty string is the current folder to ``Path``, so that ``out=""`` would
    write there, as ``--out ''`` would: it is refused, in the command line's words."""
    if not isinstance(value, str | os.PathLike):
        raise IdentikitError(f"{name} must be a path (a str or a Path), got {shown(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):  # os.PathLike[bytes]
        raise IdentikitError(f"{name} must be a path (a str or a Path), got {shown(value)}")
    if not text.strip():
        raise IdentikitError(f"{name}: an empty path is not {what}")
    return Path(text)


def optional_path(value: object, name: str, what: str = "a file or folder") -> Path | None:
    """As :func:`path_argument`, or None for None (a default the callee chooses)."""
    return None if value is None else path_argument(value, name, what)


def instance_of(value: Any, kind: type[T] | tuple[type, ...], name: str, what: str) -> T:
    """``value`` when it is a ``kind``; otherwise a one-line refusal saying ``what`` was
    expected (an AttributeError deep inside would name neither the argument nor the fix)."""
    if not isinstance(value, kind):
        raise IdentikitError(f"{name} must be {what}, got {shown(value)}")
    return cast(T, value)


def text_sequence(value: object, name: str) -> tuple[str, ...]:
    """``value`` as a tuple of strings: a sequence of them, not one string (``"softmax"`` is
    not the names s, o, f, t...)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise IdentikitError(
            f"{name} must be a sequence of names such as ('mlp',), got {shown(value)}"
        )
    for item in value:
        if not isinstance(item, str):
            raise IdentikitError(f"{name} must hold names (strings), got {shown(item)}")
    return tuple(value)


def flag(value: object, name: str) -> bool:
    """``value`` when it is a bool: ``"no"`` or ``0`` would be taken as true or false by
    Python's rules, not the caller's."""
    if not isinstance(value, bool):
        raise IdentikitError(f"{name} must be True or False, got {shown(value)}")
    return value
