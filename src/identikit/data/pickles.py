"""Reading pickled data without letting the pickle run code.

A pickle is a program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes name any importable callable and
``REDUCE`` calls it, so ``pickle.load`` on a file someone handed you may run ``os.system``. The
pickles datasets are distributed in (CIFAR-10's Python version) hold only dicts, lists, numbers,
strings and NumPy arrays, so :func:`read_pickle` resolves no name but the few NumPy needs to
rebuild an array, and replaces even those with constructors of its own that check what they
are asked to build (no object arrays, no allocation larger than the file could describe).
Every other name is refused in one line before anything is called.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from identikit.base.errors import DataError


class _Refused(Exception):
    """A pickle asked for something :func:`read_pickle` does not build."""


class _ArrayType:
    """What the name ``numpy.ndarray`` resolves to: a marker for :func:`_reconstruct`, not the
    class (called by a pickle, NumPy's constructor would allocate any shape asked for)."""


_NDARRAY = _ArrayType()


def _dtype(spec: object, align: object = False, copy: object = False) -> np.dtype[Any]:
    """``numpy.dtype(spec)`` for plain numbers and text only (Python 2 pickles spell ``spec``
    as bytes)."""
    if isinstance(spec, bytes):
        spec = spec.decode("latin-1")
    if not isinstance(spec, str):
        raise _Refused(f"a dtype given as {type(spec).__name__}")
    try:
        dtype = np.dtype(spec)
    except TypeError as exc:
        raise _Refused(f"the dtype {spec!r} ({exc})") from None
    if dtype.kind not in "biufcSU" or dtype.hasobject:
        raise _Refused(f"the dtype {spec!r}")
    return dtype


def _reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """The empty array NumPy's pickles start from (``ndarray.__reduce__``); ``__setstate__``
    then gives it its real shape and data, whose size the file's bytes bound."""
    if subtype is not _NDARRAY:
        raise _Refused(f"an array of type {subtype!r}")
    if not isinstance(shape, tuple) or math.prod(int(n) for n in shape) > 1:
        raise _Refused(f"an empty array of shape {shape!r}")
    return np.empty(shape, dtype=_dtype(dtype) if not isinstance(dtype, np.dtype) else dtype)


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """An array over bytes the pickle holds (NumPy's protocol-5 form); a copy, owned."""
    if not isinstance(buffer, bytes | bytearray | memoryview | pickle.PickleBuffer):
        raise _Refused(f"an array over a {type(buffer).__name__}")
    kind = dtype if isinstance(dtype, np.dtype) else _dtype(dtype)
    if kind.hasobject or not isinstance(shape, tuple) or order not in ("C", "F"):
        raise _Refused("an array of objects or of no clear shape")
    try:
        return np.frombuffer(memoryview(buffer), dtype=kind).reshape(shape, order=order).copy()
    except ValueError as exc:
        raise _Refused(f"an array that does not fit its bytes ({exc})") from None


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode``, with which Python 3 pickles bytes in protocols 0-2: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"codecs.encode with {encoding!r}")
    return codecs.encode(text, "latin-1")


def _empty_bytes(*args: object) -> bytes:
    """``bytes()``, with which Python 3 pickles empty bytes in protocols 0-2; no arguments
    (``bytes(n)`` would allocate ``n`` bytes)."""
    if args:
        raise _Refused("bytes with arguments")
    return b""


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    **{
        (f"{core}.multiarray", "_reconstruct"): _reconstruct
        for core in ("numpy.core", "numpy._core")
    },
    **{(f"{core}.numeric", "_frombuffer"): _frombuffer for core in ("numpy.core", "numpy._core")},
}


class _Unpickler(pickle.Unpickler):
    """An unpickler whose every name lookup goes through :data:`_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_pickle(data: bytes, subject: str) -> Any:
    """The value pickled in ``data`` (read as Python 2 wrote it: its strings as bytes), built
    from nothing but containers, numbers, strings and arrays of numbers.

    A pickle that names anything else (``os.system``, ``builtins.eval``, a class of its own)
    is refused with a one-line :class:`DataError` naming ``subject``, before it runs.
    """
    try:
        return _Unpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DataError(
            f"{subject}: a pickle that asks for {exc}; refused (only dicts, lists, numbers, "
            "strings and NumPy arrays of numbers are read from pickles)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError, RecursionError) as exc:  # fmt: skip
        raise DataError(f"{subject}: damaged or unreadable pickle ({type(exc).__name__})") from None
