"""Data-free runs: a guard that the data layer asks before it reads or fetches any dataset.

A data-free reconstruction must read nothing but the model (issue 17: the archaeologists have
the network and nothing else). Rather than trusting every code path to stay away from data, the
run holds :func:`data_free` while it computes, and every way into a dataset
(:func:`identikit.data.images.load_images`, :func:`identikit.data.datasets.ensure_files`) calls
:func:`check_data_allowed` first, which refuses in one line. The guard is process-wide, not
per thread, so that a search's worker threads are held to it too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from identikit.base.errors import IdentikitError

_lock = threading.Lock()
_holders: list[str] = []


@contextlib.contextmanager
def data_free(who: str) -> Iterator[None]:
    """While inside, no dataset may be read or fetched; ``who`` names the run in the error."""
    with _lock:
        _holders.append(who)
    try:
        yield
    finally:
        with _lock:
            _holders.remove(who)


def data_allowed() -> bool:
    """Whether datasets may be read now (no data-free run is under way)."""
    with _lock:
        return not _holders


def check_data_allowed(what: str) -> None:
    """Refuse, in one line, to read ``what`` while a data-free run is under way."""
    with _lock:
        who = _holders[-1] if _holders else None
    if who is not None:
        raise IdentikitError(f"{who} is data-free: it may not read {what}")
