"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (or a crash) never sees a half-written file, and an existing good file is only
replaced by a complete new one. Writing in the same folder keeps the rename atomic: a rename
across file systems is a copy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from identikit.errors import IdentikitError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[bytes] | IO[str]]:
    """Open a temporary file beside ``path``; on success, fsync and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    Errors from the file system (read-only folder, full disk) become :class:`IdentikitError`.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise IdentikitError(f"cannot write to {target.parent}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            # mkstemp creates the file 0600; give it the permissions a plain open() would.
            os.chmod(handle.fileno(), 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise IdentikitError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)  # type: ignore[arg-type]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
