"""What the engine tuner chose, the rates it measured, and the per-machine cache of its choices.

A measured rate is keyed by a label such as ``onnx@512`` (an engine at a chunk size) or
``onnx@512x1threads`` (the same at fewer threads than the process has): :class:`Trial` is that
label as a value, so that no reader splits strings. The labels are what results and the cache
record, exactly as before.

The cache (``choices.json`` in the cache folder) has one writer (:func:`save_choices`) and one
reader (:func:`read_choices`). Its format version 2 is ``{"version": 2, "choices": {key:
record}}``; a file written before versions (``{key: record}``) reads as version 1. A file
written by a newer identikit is a one-line error naming it; a damaged one is an empty cache,
which only costs a re-measurement.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from identikit.base.atomic import atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.safe_files import read_json
from identikit.base.safe_folders import opened_folder
from identikit.base.values import is_finite, is_whole
from identikit.data.datasets import default_root

CACHE_FILE = "choices.json"
# The cache file's format: 2 nests the choices under "choices" beside "version".
CACHE_VERSION = 2
# What a cache key hashes (see cache_key); a new number would measure every choice again.
KEY_VERSION = 1
# The process's thread budget as it started: a choice of fewer threads lowers PyTorch's count
# for the process, and must not change what later choices are measured with or cached under.
PROCESS_THREADS = torch.get_num_threads()
# The largest chunk size a cached choice may name: far above any measured, far below one that
# would exhaust memory. Anything outside was edited by hand, and is remeasured.
MAX_CHUNK = 1_048_576

_LABEL = re.compile(r"(?P<backend>[^@]+)@(?P<chunk>[0-9]+)(?:x(?P<threads>[0-9]+)threads)?")


@dataclass(frozen=True)
class Trial:
    """One timed configuration: an engine at a chunk size, and at ``threads`` threads where
    that is not the process's own count."""

    backend: str
    chunk: int
    threads: int | None = None

    @property
    def label(self) -> str:
        """How rates name it: ``onnx@512``, ``onnx@512x1threads``."""
        text = f"{self.backend}@{self.chunk}"
        return text if self.threads is None else f"{text}x{self.threads}threads"

    @classmethod
    def parse(cls, label: str) -> Trial | None:
        """The trial ``label`` names; None for a rate of something else (``compile-start-s``)."""
        match = _LABEL.fullmatch(label)
        if match is None:
            return None
        threads = match["threads"]
        return cls(match["backend"], int(match["chunk"]), None if threads is None else int(threads))


@dataclass
class Choice:
    """What was chosen and why: the winner, every measured rate, every engine left out."""

    backend: str
    precision: str
    chunk_size: int
    threads: int
    images_per_s: float | None = None
    rates: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    measured: str | None = None
    # Engines measured faster than the winner but not chosen, and why (torch.compile whose
    # compilation does not pay back); absent from caches written before it was recorded.
    passed_over: dict[str, str] = field(default_factory=dict)
    # Engines left unmeasured because the work they were chosen for was too small for them to
    # repay (torch.compile; see engines.tuning); a larger sweep measures them. Absent from
    # caches written before it was recorded.
    deferred: list[str] = field(default_factory=list)
    how: str = "given"  # measured | cached | given | default
    # Where this choice is cached, so that a sweep can report a rate that shows it stale.
    cache_dir: Path | None = field(default=None, repr=False)
    cache_key: str | None = field(default=None, repr=False)

    def trials(self) -> dict[Trial, float]:
        """The measured rates of engine configurations (without ``compile-start-s``)."""
        parsed = {label: Trial.parse(label) for label in self.rates}
        return {trial: self.rates[label] for label, trial in parsed.items() if trial is not None}

    def summary(self) -> str:
        """One line for the user, e.g. ``onnx (fp32, chunks of 512, 2 threads), 7,012 ...``."""
        line = (
            f"{self.backend} ({self.precision}, chunks of {self.chunk_size}, "
            f"{self.threads} thread{'s' if self.threads != 1 else ''})"
        )
        if self.images_per_s:
            line += f", {self.images_per_s:,.0f} images/s"
        best = self._best_per_backend()
        others = {b: r for b, r in best.items() if b != self.backend and b not in self.passed_over}
        if others:
            line += "; " + ", ".join(f"{b} {r:,.0f}" for b, r in others.items())
        for name, why in self.passed_over.items():
            rate = f" {best[name]:,.0f} images/s" if name in best else ""
            line += f"; {name}{rate} not chosen: {why}"
        if self.skipped:
            reasons: dict[str, list[str]] = {}
            for name, why in self.skipped.items():
                reasons.setdefault(why, []).append(name)
            line += "; not used: " + ", ".join(
                f"{', '.join(names)} ({why})" for why, names in reasons.items()
            )
        return line + {
            "measured": " [measured now, cached]",
            "cached": f" [measured {self.measured or 'earlier'}, cached; "
            "identikit backends --remeasure to measure again]",
        }.get(self.how, "")

    def _best_per_backend(self) -> dict[str, float]:
        """The best rate of each engine over its chunk sizes and thread counts, fastest first."""
        best: dict[str, float] = {}
        for trial, rate in self.trials().items():
            best[trial.backend] = max(best.get(trial.backend, 0.0), rate)
        return dict(sorted(best.items(), key=lambda item: -item[1]))

    def record(self) -> dict[str, Any]:
        """The choice as recorded in results: what was chosen and measured, not whether this
        process measured it or read it from the cache (a resumed sweep reads what the
        interrupted one measured, and records the same), nor where it is cached."""
        record = asdict(self)
        for name in _LOCAL:
            record.pop(name)
        return record


# Choice's fields that belong to this process, never recorded in results or the cache.
_LOCAL = ("how", "cache_dir", "cache_key")
# The fields a cached record holds: all of Choice's but this process's own; the optional ones
# were added later, and a cache written before them is still read.
_RECORDED = frozenset(f.name for f in fields(Choice)) - set(_LOCAL)
_OPTIONAL = frozenset({"passed_over", "deferred"})


def machine_fingerprint(device: torch.device) -> dict[str, Any]:
    """What a measured speed depends on besides the model."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        ort = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        ort = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": PROCESS_THREADS,
        "torch": torch.__version__,
        "onnxruntime": ort,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


@dataclass(frozen=True)
class Request:
    """What a cached choice answers: this model structure, on this device, choosing among
    ``backends`` at ``precision`` (and at ``chunk``, when one was given)."""

    signature: str
    device: torch.device
    backends: tuple[str, ...]
    precision: str
    chunk: int | None

    def key(self) -> str:
        """The cache key: a hash of the request and of this machine."""
        blob = json.dumps(
            {
                "version": KEY_VERSION,
                "machine": machine_fingerprint(self.device),
                "model": self.signature,
                "backends": list(self.backends),
                "precision": self.precision,
                "chunk": self.chunk,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def cached(self, record: object) -> Choice | None:
        """The cached ``record`` as a Choice, or None unless every value in it is one this
        machine could have measured for this request.

        The cache is a file anyone can edit: a hand-written ``"threads": 100000`` once crashed
        PyTorch and hung ONNX Runtime. An entry that fails any check is measured again (and
        overwritten), never trusted and never an error.
        """
        if not isinstance(record, dict) or not _RECORDED - _OPTIONAL <= set(record) <= _RECORDED:
            return None
        rate = record["images_per_s"]
        valid = (
            _is_str(record["backend"])
            and record["backend"] in self.backends
            and record["precision"] == self.precision
            and _whole(record["chunk_size"], 1, MAX_CHUNK)
            and self.chunk in (None, record["chunk_size"])
            and _whole(record["threads"], 1, PROCESS_THREADS)
            and (rate is None or (is_finite(rate) and rate > 0))
            and _mapping(record["rates"], is_finite)
            and _mapping(record["skipped"], _is_str)
            and (record["measured"] is None or _is_str(record["measured"]))
            and _mapping(record.get("passed_over", {}), _is_str)
            and _names(record.get("deferred", []), self.backends)
        )
        return Choice(**record, how="cached") if valid else None


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _whole(value: object, low: int, high: int) -> bool:
    """Whether ``value`` is an int (JSON's ``true`` is not one) from ``low`` to ``high``."""
    return is_whole(value) and low <= value <= high


def _names(value: object, known: tuple[str, ...]) -> bool:
    """Whether ``value`` is a list of names from ``known``."""
    return isinstance(value, list) and all(_is_str(name) and name in known for name in value)


def _mapping(value: object, valid: Callable[[object], bool]) -> bool:
    """Whether ``value`` maps strings to values that pass ``valid``."""
    return isinstance(value, dict) and all(
        _is_str(key) and valid(item) for key, item in value.items()
    )


def read_choices(folder: Path) -> dict[str, Any]:
    """The cached choices by key.

    A cache that cannot be read (missing, damaged, not a JSON object, not a regular file) is an
    empty one, which only costs a re-measurement; one written by a newer identikit is an error,
    rather than a cache this one would overwrite with its own format.
    """
    path = folder / CACHE_FILE
    try:
        data = read_json(path)
    except IdentikitError:
        return {}
    if not isinstance(data, dict):
        return {}
    version = data.get("version", 1)
    if is_whole(version) and version > CACHE_VERSION:
        raise IdentikitError(
            f"{path} was written by a newer identikit (format version {version}; this one "
            f"reads up to {CACHE_VERSION}): upgrade identikit, or delete the file to measure again"
        )
    if version == 1:  # before versions: the choices themselves, by key
        return {key: value for key, value in data.items() if key != "version"}
    choices = data.get("choices")
    return choices if version == CACHE_VERSION and isinstance(choices, dict) else {}


def save_choices(folder: Path, choices: dict[str, Any]) -> None:
    """Write the cached ``choices``, atomically, or leave the cache as it was (a cache that
    cannot be written only costs a re-measurement).

    The default cache folder (``backends`` under the data root) is identikit's own: where it
    is a link, nothing is written through it (:func:`cache_root`).
    """
    path = folder / CACHE_FILE
    with contextlib.suppress(OSError, IdentikitError):
        root = cache_root(folder)
        with opened_folder(root, folder) as opened, contextlib.suppress(OSError):
            # An empty folder where the cache belongs is replaced; one holding files is left
            # alone (rmdir refuses it, as it refuses a link), and choices are then measured in
            # every process.
            os.rmdir(CACHE_FILE, dir_fd=opened)
        document = {"version": CACHE_VERSION, "choices": choices}
        atomic_write_text(path, json.dumps(document, indent=1, sort_keys=True), root=root)


def cache_root(folder: Path) -> Path:
    """The folder of ``folder`` that the user chose and that may be a link: a cache folder
    they named is theirs; for the default one, ``backends`` is made by identikit below the
    data root (see :attr:`~identikit.engines.options.EngineOptions.cache_folder`), and only
    the data root is followed."""
    data_root = default_root()
    return data_root if folder == data_root / "backends" else folder


def make_cache_folder(cache: Path, folder: Path) -> None:
    """Create ``folder`` below the cache folder ``cache`` (its ``onnx`` exports), refusing
    a link anywhere below the folder the user chose (:func:`cache_root`)."""
    with opened_folder(cache_root(cache), folder):
        pass


def remember(folder: Path, key: str, choice: Choice) -> None:
    """Add ``choice`` to the cache under ``key``."""
    choices = read_choices(folder)
    choices[key] = choice.record()
    save_choices(folder, choices)
