"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

Format (LeCun et al., "The MNIST database of handwritten digits"): two zero bytes, a type
byte (0x08 = unsigned byte), a byte with the number of dimensions, one big-endian uint32 per
dimension, then the data in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from identikit.base.errors import DataError

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path, *, recovery: str = "") -> bytes:
    """The file's content, gunzipped when it is gzip-compressed; ``recovery`` (how to get a
    good copy) ends the error for corrupt gzip data."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        hint = f"; {recovery}" if recovery else ""
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}){hint}") from exc


def parse_idx(data: bytes, *, name: str, ndim: int) -> np.ndarray:
    """Parse IDX bytes holding an unsigned-byte array of ``ndim`` dimensions.

    Raises :class:`DataError` naming ``name`` for a wrong magic number, a wrong number of
    dimensions, or a size that does not match the header (truncated or with trailing bytes).
    """
    if len(data) < 4:
        raise DataError(f"{name}: truncated: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(
            f"{name}: wrong magic number 0x{magic:08x}: expected an IDX file of unsigned bytes "
            f"(0x0000080{ndim})"
        )
    if data[3] != ndim:
        raise DataError(f"{name}: has {data[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated: the header needs {header} bytes, file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) < expected:
        raise DataError(
            f"{name}: truncated: header says shape {shape} ({expected} bytes), file has {len(data)}"
        )
    if len(data) > expected:
        raise DataError(
            f"{name}: {len(data) - expected} unexpected bytes after the data of shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (the inverse of :func:`parse_idx`)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding supports uint8 only, got {array.dtype}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array).tobytes()
