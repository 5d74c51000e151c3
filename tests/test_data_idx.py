"""IDX parsing: round trips and every malformed-file case."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from identikit.base.errors import DataError
from identikit.data.idx import encode_idx, parse_idx, read_bytes


@given(arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 6), st.integers(1, 6))))
def test_round_trip_images(array: np.ndarray) -> None:
    back = parse_idx(encode_idx(array), name="x", ndim=3)
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@given(arrays(np.uint8, st.integers(0, 50)))
def test_round_trip_labels(array: np.ndarray) -> None:
    np.testing.assert_array_equal(parse_idx(encode_idx(array), name="x", ndim=1), array)


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_fail_cleanly(blob: bytes) -> None:
    try:
        out = parse_idx(blob, name="fuzz", ndim=3)
    except DataError as exc:
        assert "fuzz" in str(exc)
    else:
        assert out.ndim == 3 and out.size == len(blob) - 16


def _valid() -> bytes:
    return encode_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (_valid()[:-1], "truncated"),
        (_valid()[:10], "truncated"),
        (b"\x00\x00", "truncated"),
        (_valid() + b"\x00", "unexpected bytes"),
        (b"\x00\x00\x0d\x03" + _valid()[4:], "wrong magic number"),
        (b"\x01\x00\x08\x03" + _valid()[4:], "wrong magic number"),
        (b"\x00\x00\x08\x01" + _valid()[4:], "dimensions"),
    ],
)
def test_malformed_files_name_the_file(blob: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        parse_idx(blob, name="train-images-idx3-ubyte", ndim=3)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_gzip_is_transparent(tmp_path: Path) -> None:
    (tmp_path / "a.gz").write_bytes(gzip.compress(_valid()))
    assert read_bytes(tmp_path / "a.gz") == _valid()


def test_corrupt_gzip_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "a.gz").write_bytes(gzip.compress(_valid())[:-8])
    with pytest.raises(DataError, match=r"a\.gz"):
        read_bytes(tmp_path / "a.gz")
