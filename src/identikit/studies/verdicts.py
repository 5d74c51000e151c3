"""Verdicts accumulate: a ``judge`` run replaces the verdicts of the judges it names only.

``judge.json`` holds one entry per judge (its agreement, its transfer matrix, its own
accuracy). A run with other judges adds theirs and keeps the earlier ones, as long as they
judged the same identikits: each record carries the SHA-256 of the identikits it judged
(their images and classes, :func:`identikits_sha256`), and the earlier verdicts of
identikits that changed since (a sweep resumed with more runs, or searched again) are dropped,
with a line saying so, rather than shown beside verdicts on other images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

# The per-judge entries of a verdict (the rest of a record is the latest run's).
PER_JUDGE = ("judges", "transfer_matrices", "judge_info")


def identikits_sha256(images: np.ndarray, classes: np.ndarray) -> str:
    """The SHA-256 of identikits: their shape, pixels (float32) and classes (int64)."""
    digest = hashlib.sha256()
    pixels = np.ascontiguousarray(images, dtype=np.float32)
    digest.update(repr(pixels.shape).encode())
    digest.update(pixels.tobytes())
    digest.update(np.ascontiguousarray(classes, dtype=np.int64).tobytes())
    return digest.hexdigest()


def merge_verdicts(
    earlier: dict[str, Any] | None,
    record: dict[str, Any],
    named: Collection[str],
    *,
    log: Callable[[str], None] | None = None,
    where: str = "judge.json",
) -> dict[str, Any]:
    """``record`` (a new run's verdict, by the judges ``named``) with the earlier verdicts of
    other judges kept from ``earlier`` (a validated judge.json, or None) where both judged the
    same identikits; ``log`` hears which earlier verdicts are dropped, and why."""
    if earlier is None:
        return record
    others = [name for name in earlier.get("judges", {}) if name not in named]
    if not others:
        return record
    if earlier.get("identikits_sha256") != record.get("identikits_sha256"):
        if log is not None:
            why = (
                "judged before identikit recorded which identikits a verdict is of"
                if earlier.get("identikits_sha256") is None
                else "the identikits have changed since"
            )
            log(f"{where}: dropping the earlier verdicts of {', '.join(others)} ({why})")
        return record
    merged = dict(record)
    for key in PER_JUDGE:
        kept = {n: v for n, v in earlier.get(key, {}).items() if n in others}
        merged[key] = {**kept, **record.get(key, {})}
    return merged
