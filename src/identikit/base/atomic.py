"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (or a crash) never sees a half-written file, and an existing good file is only
replaced by a complete new one. Writing in the same folder keeps the rename atomic: a rename
across file systems is a copy. Only regular files are replaced: renaming over ``/dev/null`` or a
named pipe would swap the device for a plain file. Temporary names are short (a 250-character
target name still fits the file system's 255) and end in :data:`TEMPORARY_SUFFIX`, so that
what a kill leaves behind can be recognised and removed (:func:`remove_leftovers`).

Given a ``root`` (the output folder the user named), every folder between it and the file is
opened without following links (:mod:`identikit.base.safe_folders`) and the temporary file is
created and renamed relative to that folder's descriptor: a link where identikit's own
subfolder belongs is refused, never written through.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from identikit.base.errors import IdentikitError
from identikit.base.safe_folders import opened_folder

TEMPORARY_SUFFIX = ".identikit-tmp"
LEGACY_PREFIXES = tuple(
    f".{name}."
    for name in ("results.json", "identikits.npz", "grid.png", "sweep-state.npz", "judge.json")
)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    root: str | os.PathLike[str] | None = None,
) -> Iterator[IO[bytes] | IO[str]]:
    """Open a temporary file beside ``path``; on success, fsync and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    Errors from the file system (read-only folder, full disk) become :class:`IdentikitError`.
    With ``root``, ``path`` must lie below it and no folder between them may be a link.
    """
    target = Path(path)
    if not target.name:
        raise IdentikitError(f"cannot write to {str(path)!r}: not a file name")
    if root is not None:
        with _open_below(Path(root), target, mode) as handle:
            yield handle
        return
    _refuse_special(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name[:40]}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
        )
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


@contextlib.contextmanager
def _open_below(root: Path, target: Path, mode: str) -> Iterator[IO[bytes] | IO[str]]:
    """:func:`atomic_open` of ``target`` below ``root``, every step relative to the
    descriptor of the target's folder, opened without following links."""
    with opened_folder(root, target.parent) as folder:
        _refuse_special_entry(folder, target)
        temporary, fd = _create_temporary(folder, target)
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as exc:
            _remove_quietly(temporary, folder)
            raise IdentikitError(f"cannot write {target}: {exc.strerror or exc}") from exc
        except BaseException:
            _remove_quietly(temporary, folder)
            raise


def _create_temporary(folder: int, target: Path) -> tuple[str, int]:
    """A new temporary file's name and descriptor in ``folder``: O_EXCL and O_NOFOLLOW, so
    that nothing already there (a planted link) is ever opened; 0666 less the umask, the
    permissions a plain open() gives."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = f".{target.name[:40]}.{os.urandom(4).hex()}{TEMPORARY_SUFFIX}"
        try:
            return name, os.open(name, flags, 0o666, dir_fd=folder)
        except FileExistsError:
            continue
        except OSError as exc:
            raise IdentikitError(
                f"cannot write to {target.parent}: {exc.strerror or exc}"
            ) from None
    raise IdentikitError(f"cannot write to {target.parent}: no free temporary name")


def _refuse_special_entry(folder: int, target: Path) -> None:
    """Refuse to replace a folder, device or pipe; a link is replaced as a link (the rename
    never follows it), and whatever it points to is left alone."""
    try:
        mode = os.stat(target.name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return  # nothing there yet: a new file is made
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device or a pipe)"
        raise IdentikitError(f"cannot write {target}: it is {kind}; refusing to replace it")


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, root: str | os.PathLike[str] | None = None
) -> None:
    """Write ``data`` to ``path`` atomically (below ``root`` through no link, when given)."""
    with atomic_open(path, "wb", root=root) as handle:
        handle.write(data)  # type: ignore[arg-type]


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, root: str | os.PathLike[str] | None = None
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (below ``root`` through no link, when
    given)."""
    atomic_write_bytes(path, text.encode("utf-8"), root=root)


def _refuse_special(target: Path) -> None:
    """Refuse to replace anything but a regular file (a link to one is replaced as a link)."""
    try:
        mode = target.stat().st_mode
    except OSError:
        return  # nothing there yet (or a dangling link): a new file is made
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device or a pipe)"
        raise IdentikitError(f"cannot write {target}: it is {kind}; refusing to replace it")


def remove_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that a killed writer left in ``folder``; return them.

    Call it only while holding the folder's lock (:mod:`identikit.base.folder_lock`): another
    process's temporary file is then never one in the middle of being written.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            # Also ".results.json.x1y2.tmp": the temporary names of versions before 0.2.
            legacy = entry.name.endswith(".tmp") and entry.name.startswith(LEGACY_PREFIXES)
            if entry.name.startswith(".") and (entry.name.endswith(TEMPORARY_SUFFIX) or legacy):
                with contextlib.suppress(OSError):
                    if entry.is_file() and not entry.is_symlink():
                        entry.unlink()
                        removed.append(entry)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str, folder: int | None = None) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path, dir_fd=folder)
