"""Sizes over the limits (classes, runs, candidates) are refused before anything is allocated,
naming the variable that lifts each limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import assert_clean_error, run_main, search_args


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--digits", "0-99999999999"], "IDENTIKIT_LIMIT_CLASSES"),
        (["--runs", "10000000"], "IDENTIKIT_LIMIT_RUNS"),
        (["--candidates", "100000000"], "IDENTIKIT_LIMIT_CANDIDATES"),
    ],
)
def test_sizes_over_the_limits_are_refused_at_once(
    model_file: Path,
    tmp_path: Path,
    flags: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = search_args(model_file, tmp_path / "out")
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[args.index(flag) + 1] = value
    started = time.monotonic()
    code, _, err = run_main(capsys, *args)
    assert_clean_error(code, err, fragment)
    assert time.monotonic() - started < 30  # refused before anything was allocated
