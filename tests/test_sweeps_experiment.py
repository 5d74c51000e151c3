"""A sweep's settings: the digits a user names."""

from __future__ import annotations

import pytest

from identikit.base.errors import IdentikitError
from identikit.sweeps.experiment import parse_digits


def test_parse_digits() -> None:
    assert parse_digits("0-9") == tuple(range(10))
    assert parse_digits("7, 3,3") == (3, 7)
    assert parse_digits("0-2,7") == (0, 1, 2, 7)
    for bad in ("", "a", "3-1", "-1", "1-"):
        with pytest.raises(IdentikitError, match="malformed"):
            parse_digits(bad)
