"""A damaged or hand-edited results.json or identikits.npz is one line with exit code 2, naming the
file."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import assert_clean_error, rewrite_json, rewrite_npz, run_main


def set_path(record: Any, keys: list[Any], value: Any) -> Any:
    target = record
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return record


DELETE = object()


RESULTS_CASES: dict[str, Callable[[Any], Any]] = {
    "empty object": lambda r: {},
    "a list": lambda r: [],
    "no runs": lambda r: set_path(r, ["runs"], DELETE),
    "runs cut short": lambda r: set_path(r, ["runs"], r["runs"][:1]),
    "confidence a string": lambda r: set_path(r, ["runs", 0, "confidence"], "high"),
    "confidence above 1": lambda r: set_path(r, ["runs", 0, "confidence"], 2.5),
    "digit out of range": lambda r: set_path(r, ["settings", "digits"], [0, 99]),
    "unknown strategy": lambda r: set_path(r, ["settings", "strategy"], "telepathy"),
    "negative runs": lambda r: set_path(r, ["settings", "runs"], -1),
    "classes True": lambda r: set_path(r, ["model", "classes"], True),
    "history too short": lambda r: set_path(r, ["runs", 1, "history"], []),
    "unknown status": lambda r: set_path(r, ["runs", 0, "status"], "bored"),
    "unknown setting": lambda r: set_path(r, ["settings", "colour"], "red"),
    "shape a string": lambda r: set_path(r, ["model", "input_shape"], "3x32x32"),
    "shape of two numbers": lambda r: set_path(r, ["model", "input_shape"], [28, 28]),
    "shape of no channels": lambda r: set_path(r, ["model", "input_shape"], [0, 28, 28]),
    "shape a fraction": lambda r: set_path(r, ["model", "input_shape"], [1, 28.5, 28]),
    "no shape in version 2": lambda r: set_path(r, ["model", "input_shape"], DELETE),
    "conventions a list": lambda r: set_path(r, ["model", "preprocessing"], ["0,1"]),
    "card accuracy a list": lambda r: set_path(r, ["model", "card", "test_accuracy"], [1]),
    # Valid JSON, but too large for a float: float() overflows where nan checks are made.
    "confidence of 400 digits": lambda r: set_path(r, ["runs", 0, "confidence"], 10**400),
    "setting of 400 digits": lambda r: set_path(
        r, ["settings", "strategy_settings", "mask_density"], 10**400
    ),
}


@pytest.mark.parametrize("case", sorted(RESULTS_CASES))
def test_damaged_results_json(copy: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_json(copy / "sweep" / "results.json", RESULTS_CASES[case])
    code, _, err = run_main(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "results.json")


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b"\xff\xfe\x00", b"[" * 100_000, b'{"a": NaN}']
)
def test_unreadable_results_json(
    copy: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "sweep" / "results.json").write_bytes(content)
    code, _, err = run_main(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "results.json")


def pickle_bytes() -> bytes:
    return pickle.dumps({"images": [1, 2, 3]})


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


IDENTIKIT_CASES: dict[str, Callable[[Path], object]] = {
    "a pickle": lambda p: p.write_bytes(pickle_bytes()),
    "a plain npy": lambda p: p.write_bytes(npy_bytes(np.zeros((4, 28, 28), np.float32))),
    "object arrays": lambda p: rewrite_npz(
        p, lambda a: {**a, "images": np.array([None] * 4, dtype=object)}
    ),
    "no digits": lambda p: rewrite_npz(p, lambda a: {"images": a["images"]}),
    "wrong shape": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"][:, :5]}),
    "empty": lambda p: rewrite_npz(
        p, lambda a: {"images": a["images"][:0], "digits": a["digits"][:0]}
    ),
    "other digits": lambda p: rewrite_npz(p, lambda a: {**a, "digits": a["digits"][::-1] + 1}),
    "pixels out of range": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] + 5}),
    "nan pixels": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] * np.nan}),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
}


@pytest.mark.parametrize("case", sorted(IDENTIKIT_CASES))
def test_damaged_identikits(copy: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    IDENTIKIT_CASES[case](copy / "sweep" / "identikits.npz")
    code, _, err = run_main(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "identikits.npz")
