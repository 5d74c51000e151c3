"""One process per output folder: an exclusive advisory lock held for the whole job.

Two ``identikit search`` processes given the same ``--out`` would each save their own state
over the other's every few seconds, and the one that finished last would win silently. The
first takes ``DIR/.identikit-lock`` with ``flock`` (released by the kernel when the process
dies, however it dies, so a kill never leaves a folder locked) and writes who it is into the
file; a second is refused in one line naming the holder. The lock file is opened without
following a link, and one with several (hard) links is refused: it is another file too, and
the record would be written into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from identikit.base.errors import IdentikitError

LOCK_FILE = ".identikit-lock"

# Locks this process holds, by folder: flock is per open file, so taking the same folder's
# lock twice in one process (a comparison's folder, then a sweep inside it) must not block.
_held: dict[str, int] = {}


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike[str], *, create: bool = True) -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs, creating the folder when ``create``."""
    path = Path(folder)
    if not create and not path.is_dir():
        raise IdentikitError(f"{path} is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentikitError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    key = str(path.resolve())
    if key in _held:
        yield
        return
    fd = _open_lock(path / LOCK_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IdentikitError(
                f"{path} is in use by another identikit process ({_holder(fd)}); wait for it "
                "to finish or use another --out"
            ) from None
        except OSError as exc:
            # A file system without locks (some network mounts): work on, unguarded, as
            # before locks existed, rather than refuse every sweep there.
            print(
                f"identikit: cannot lock {path} ({exc.strerror or exc}); "
                "make sure no other process uses it",
                file=sys.stderr,
            )
        _write_holder(fd)
        _held[key] = fd
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the lock


def _open_lock(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise IdentikitError(f"cannot lock {path.parent}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IdentikitError(f"cannot lock {path.parent}: {path.name} is not a regular file")
    if info.st_nlink > 1:
        # A hard link: the same file is someone's elsewhere too, and writing who holds the
        # lock would overwrite it. Nothing has been written yet (open does not truncate).
        os.close(fd)
        raise IdentikitError(
            f"cannot lock {path.parent}: {path} has {info.st_nlink} links (a hard link to "
            "another file); refusing to write into it: delete it and run again"
        )
    return fd


def _write_holder(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(["identikit", *sys.argv[1:]])[:500],
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        return (
            f"pid {int(record['pid'])} on {str(record['host'])[:60]}, since {record['since']}: "
            f"{str(record['command'])[:200]}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
