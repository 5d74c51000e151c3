"""Reading files a user or a shared folder hands us, without trusting them.

Every file identikit reads back (results, states, identikits, verdicts, cached choices) goes
through here:

* only regular files are read: a named pipe would block for ever, ``/dev/urandom`` never ends,
  and a device or folder is no result; the file is opened without blocking and checked with
  ``fstat`` on the open descriptor, so it cannot be swapped between check and read;
* within ``root`` when one is given: a symbolic link that leads out of the folder (a
  ``certainty.png`` pointing at a secret file) is refused, so a report never inlines it;
* sizes are checked before anything is allocated: the file's own, and for ``.npz`` archives
  every array's size as its header declares it, against :data:`identikit.base.limits.FILE_BYTES`
  (a 4.5 MB archive can inflate to 4.4 GB); object arrays, which only pickles can carry, are
  refused.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from identikit.base.errors import IdentikitError
from identikit.base.limits import FILE_BYTES, Limit


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, every link followed, lies inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def read_regular(
    path: str | os.PathLike[str], *, root: Path | None = None, limit: Limit = FILE_BYTES
) -> bytes:
    """The bytes of ``path``, which must be a regular file (inside ``root`` when given) of at
    most ``limit`` bytes."""
    file = Path(path)
    if root is not None and not inside(file, root):
        raise IdentikitError(f"{file}: a link that leads out of {root}; refusing to read it")
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise IdentikitError(f"{file} not found") from None
    except OSError as exc:
        raise IdentikitError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IdentikitError(f"{file} is {_kind(info.st_mode)}, not a regular file")
        limit.check(info.st_size, str(file))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(info.st_size + 1)
    except OSError as exc:
        raise IdentikitError(f"cannot read {file}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > info.st_size:  # grew while we read: not a file at rest
        raise IdentikitError(f"{file} changed while it was read")
    return data


def read_json(path: str | os.PathLike[str], *, root: Path | None = None) -> Any:
    """The JSON value in ``path`` (a regular file), or a one-line error naming it."""
    data = read_regular(path, root=root)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise IdentikitError(f"{path}: not valid JSON ({_short(exc)})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


def read_npz(path: str | os.PathLike[str], *, root: Path | None = None) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive ``path``, with sizes checked before allocation.

    Refuses, in one line: anything but a zip of ``.npy`` members (a pickle, a plain ``.npy``),
    object arrays, and arrays whose declared size passes the limit.
    """
    data = read_regular(path, root=root)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise IdentikitError(f"{path}: not an .npz archive of arrays") from None
    budget = FILE_BYTES.value
    arrays: dict[str, np.ndarray] = {}
    try:
        with archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name == info.filename or info.is_dir():
                    raise IdentikitError(f"{path}: member {info.filename!r} is not an array")
                FILE_BYTES.check(info.file_size, f"{path}: array {name!r}")
                with archive.open(info) as member:
                    shape, dtype = _header(member, f"{path}: array {name!r}")
                    size = math.prod(shape) * dtype.itemsize
                    FILE_BYTES.check(size, f"{path}: array {name!r}")
                    budget -= size
                    if budget < 0:
                        FILE_BYTES.check(FILE_BYTES.value - budget, str(path))
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    except IdentikitError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError) as e:
        raise IdentikitError(f"{path}: damaged .npz archive ({_short(e)})") from None
    return arrays


def _header(member: Any, subject: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype from an ``.npy`` header, read without reading the data."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise IdentikitError(f"{subject}: unsupported .npy format version {version}")
    if dtype.hasobject:
        raise IdentikitError(f"{subject} holds Python objects (only a pickle can); refused")
    return tuple(int(n) for n in shape), dtype


def display_name(path: str | os.PathLike[str]) -> str:
    """A file's name as text that can always be printed, drawn and written as UTF-8.

    A file name that is not valid UTF-8 reaches Python with lone surrogates, which matplotlib
    cannot draw and a UTF-8 file cannot hold; they become U+FFFD.
    """
    name = Path(path).name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
