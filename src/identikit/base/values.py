"""What counts as a number in a value read from a user, a file or a cache.

JSON and Python blur kinds that identikit must keep apart: ``true`` is an ``int`` to Python, a
nan or infinity slips past every range check (it compares false with any bound), and an
integer of hundreds of digits (valid JSON) overflows when it is turned into a float. One
definition of each, so that every reader refuses the same things.
"""

from __future__ import annotations

import math
from typing import TypeGuard


def is_whole(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or a ``float`` that is not a ``bool`` (finite or not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite(value: object) -> TypeGuard[int | float]:
    """A number that is neither nan nor infinite, and fits a float."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False
