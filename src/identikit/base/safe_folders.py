"""Folders identikit makes below an output folder, opened without following links.

The folder a user names (``--out DIR``, ``--pngs OUT``, a cache folder) is theirs: it may be a
link they made, and it is followed. Everything identikit creates below it (``DIR/shards``,
``OUT/<sweep>``, ``backends``) is its own, and a symbolic link there was put by someone else: a
``shards`` linked to another folder made a resumed sweep write its plan there and then delete
every file in it. So each component below the root is opened one at a time, relative to its
parent's descriptor, with ``O_NOFOLLOW | O_DIRECTORY`` (POSIX ``openat``), and files are then
created, replaced and deleted relative to the last descriptor: a link swapped in between a
check and a use is never followed either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

from identikit.base.errors import IdentikitError

# Open a folder and never a link to one; never hand the descriptor to a child process.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def components(root: Path, path: Path) -> tuple[str, ...]:
    """The names that lead from ``root`` down to ``path``, compared as written (no link is
    resolved); ``path`` outside ``root``, or a ``..`` on the way, is refused."""
    try:
        parts = PurePath(path).relative_to(PurePath(root)).parts
    except ValueError:
        raise IdentikitError(f"{path} is not inside {root}; refusing to write there") from None
    if any(part in ("", ".", "..") for part in parts):
        raise IdentikitError(f"{path} leaves {root} through '..'; refusing to write there")
    return parts


def _open_root(root: Path, *, create: bool) -> int:
    """A descriptor of the user's own folder ``root``, a link to one included."""
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a file where the folder belongs: os.open below names it
        except OSError as exc:
            raise IdentikitError(f"cannot create folder {root}: {exc.strerror or exc}") from None
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise IdentikitError(f"{root} is a file, not a folder; name a folder") from None
    except OSError as exc:
        raise IdentikitError(f"cannot open folder {root}: {exc.strerror or exc}") from None


def open_child(parent: int, name: str, shown: Path, *, create: bool) -> int:
    """A descriptor of the folder ``name`` in the folder ``parent`` (shown to users as
    ``shown``), created when ``create``; a link or anything but a folder there is refused."""
    for _ in range(2):  # a second try where the folder was made between our two calls
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise IdentikitError(f"{shown} not found") from None
        except OSError as exc:
            # ELOOP (a link, O_NOFOLLOW) or ENOTDIR (a file): say which from the entry itself.
            raise _refusal(parent, name, shown, exc) from None
        try:
            os.mkdir(name, 0o777, dir_fd=parent)
        except FileExistsError:
            continue
        except OSError as exc:
            raise IdentikitError(f"cannot create folder {shown}: {exc.strerror or exc}") from None
    raise IdentikitError(f"cannot create folder {shown}: it keeps changing")


def _refusal(parent: int, name: str, shown: Path, exc: OSError) -> IdentikitError:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return IdentikitError(f"{shown} is a link; refusing to write through it (remove it)")
    if mode and not stat.S_ISDIR(mode):
        return IdentikitError(f"{shown} is not a folder; refusing to write into it (remove it)")
    return IdentikitError(f"cannot open folder {shown}: {exc.strerror or exc}")


@contextlib.contextmanager
def opened_folder(
    root: str | os.PathLike[str], path: str | os.PathLike[str], *, create: bool = True
) -> Iterator[int]:
    """A descriptor of the folder ``path`` below ``root`` while the block runs: ``root`` is
    followed where it is a link (the user named it), every folder below it is opened without
    following one, and made where missing when ``create``."""
    top, target = Path(root), Path(path)
    names = components(top, target)
    fd = _open_root(top, create=create)
    shown = top
    try:
        for name in names:
            shown = shown / name
            child = open_child(fd, name, shown, create=create)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def is_regular(folder: int, name: str) -> bool:
    """Whether the entry ``name`` of ``folder`` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def remove_folder(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Delete the regular files in the folder ``path`` below ``root``, then the folder where
    that empties it; whether the folder is gone. Links, folders and devices in it are never
    ours to delete (nor followed) and keep it; a link where the folder was is refused,
    deleting nothing.
    """
    target = Path(path)
    if not components(Path(root), target):
        raise IdentikitError(f"refusing to remove {root} itself")
    kept = False
    with opened_folder(root, target, create=False) as fd:
        for name in os.listdir(fd):
            if is_regular(fd, name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=fd)
            else:
                kept = True
    if kept:
        return False
    with opened_folder(root, target.parent, create=False) as parent:
        try:
            os.rmdir(target.name, dir_fd=parent)
        except OSError as exc:
            # Something appeared since, or the entry is no longer our folder: keep it.
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                return False
            raise IdentikitError(f"cannot remove {target}: {exc.strerror or exc}") from None
    return True
