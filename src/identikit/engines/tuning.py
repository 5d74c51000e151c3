"""Choosing the engine, chunk size and thread count that score a model fastest on this machine.

Every candidate engine is built, checked against eager PyTorch on probe inputs (class
probabilities within ``TOLERANCE``; bf16 engines are not held to it, since their kept candidates
are re-scored in float32), and timed scoring the same batch at each chunk size, in alternating
rounds so that a slow spell of a shared machine does not favour one of them; when the two
fastest are close, they are measured again in turns. The fastest wins, ``torch.compile`` only
where its speed repays its compilation (which every new process pays again) within
``REPAY_IMAGES`` images, and the choice says why a faster engine was passed over. The choice is
cached per machine (CPU, thread count, library versions) and model structure, so the
measurement happens once; a cached rate far below what a sweep then achieves was measured on a
busy machine, and :func:`note_achieved_rate` drops it so that the next process measures again.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError, first_line
from identikit.base.safe_files import read_json
from identikit.base.values import is_finite, is_whole
from identikit.engines.quantize import quantize_onnx
from identikit.engines.scorers import (
    BACKENDS,
    TORCH_BACKENDS,
    BackendUnavailable,
    Scorer,
    module_digest,
    onnx_scorer,
    torch_scorer,
)
from identikit.models.checkpoint import file_sha256
from identikit.models.export import onnx_bytes
from identikit.models.onnx_model import OnnxModel

CPU_CHUNKS = (64, 128, 256, 512)
CUDA_CHUNKS = (1024, 4096, 8192)
MEASURE_SECONDS = 0.15
ROUNDS = 2
# torch.compile is taken only where its speed repays its compilation (which every new process
# pays again) within this many images: about one 10 x 10 sweep of the original method.
REPAY_IMAGES = 1_000_000
# The two best are measured again, in turns, when the second is within this factor of the
# first: a single short measurement of each varies by about 10% on a shared machine.
CLOSE = 1.25
FINAL_ROUNDS = 3
TOLERANCE = 1e-5
INT8_TOLERANCE = 0.05
CACHE_FILE = "choices.json"
# The process's thread budget as it started: a choice of fewer threads lowers PyTorch's count
# for the process, and must not change what later choices are measured with or cached under.
PROCESS_THREADS = torch.get_num_threads()
CACHE_VERSION = 1
# The largest chunk size a cached choice may name: far above any measured (CUDA_CHUNKS), far
# below one that would exhaust memory. Anything outside was edited by hand, and is remeasured.
MAX_CHUNK = 1_048_576
# A sweep's rate counts everything a search does besides scoring (drawing masks, keeping the
# best), so it stays below the scoring rate of an engine measured on a quiet machine: a sweep
# this much faster than the recorded rate means the recording was made on a busy one ...
STALE_FACTOR = 1.5
# ... provided the sweep ran long enough for its own rate to mean something.
STALE_MIN_SECONDS = 10.0


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
    how: str = "given"  # measured | cached | given | default
    # Where this choice is cached, so that a sweep can report a rate that shows it stale.
    cache_dir: Path | None = field(default=None, repr=False)
    cache_key: str | None = field(default=None, repr=False)

    def summary(self) -> str:
        """One line for the user, e.g. ``onnx (fp32, chunks of 512, 2 threads), 7,012 ...``."""
        line = (
            f"{self.backend} ({self.precision}, chunks of {self.chunk_size}, "
            f"{self.threads} thread{'s' if self.threads != 1 else ''})"
        )
        if self.images_per_s:
            line += f", {self.images_per_s:,.0f} images/s"
        best = _best_per_backend(self.rates)
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


def _best_per_backend(rates: dict[str, float]) -> dict[str, float]:
    """The best rate of each engine over its chunk sizes, from labels like ``onnx@512``."""
    best: dict[str, float] = {}
    for label, rate in rates.items():
        if "@" in label:
            name = label.split("@")[0]
            best[name] = max(best.get(name, 0.0), rate)
    return dict(sorted(best.items(), key=lambda item: -item[1]))


@dataclass
class Target:
    """The model to score, as the tuner needs it.

    ``module`` is the PyTorch model (None for an ONNX file, ``onnx_path``); ``reference`` gives
    the float32 eager outputs that engines are checked against, and ``probabilities`` turns
    outputs into class probabilities. ``probes`` are model inputs to check and time with.
    """

    module: nn.Module | None
    onnx_path: Path | None
    device: torch.device
    reference: Callable[[torch.Tensor], torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    probes: torch.Tensor
    signature: str
    cache_dir: Path
    calibration: torch.Tensor | None = None
    name: str = "the model"  # how messages refer to the model


def available_backends(target: Target, precision: str) -> tuple[list[str], dict[str, str]]:
    """The engines that could run ``target`` here, and why each other one cannot."""
    if precision == "int8":
        if target.device.type != "cpu":
            return [], {"onnx": "int8 scoring runs on ONNX Runtime, on the CPU"}
        return ["onnx"], {b: "int8 scoring runs on ONNX Runtime only" for b in TORCH_BACKENDS}
    if target.module is None:
        return ["onnx"], {b: "the model is an ONNX file" for b in BACKENDS if b != "onnx"}
    names, skipped = ["eager", "channels_last"], {}
    if target.device.type == "cpu" and not shutil.which(os.environ.get("CC", "cc")):
        skipped["compile"] = "torch.compile needs a C compiler on CPUs"
    else:
        names.append("compile")
    if target.device.type != "cpu":
        skipped["onnx"] = "ONNX Runtime runs on the CPU here"
    elif precision != "fp32":
        skipped["onnx"] = "ONNX Runtime scores in fp32"
    else:
        names.append("onnx")
    return names, skipped


def choose(
    target: Target,
    *,
    backend: str,
    precision: str,
    chunk_size: int | None,
    log: Callable[[str], None] | None = None,
    remeasure: bool = False,
) -> tuple[Scorer, Choice]:
    """The scorer for ``backend`` (``auto``: the fastest available) and how it was chosen.

    A named backend with a given chunk size is used as it is; otherwise the chunk size (and,
    for ``auto``, the engine) is measured, or read from the cache when measured before (unless
    ``remeasure``).
    """
    if backend != "auto" and backend not in BACKENDS:
        raise IdentikitError(f"--backend must be auto or one of {', '.join(BACKENDS)}")
    names, skipped = available_backends(target, precision)
    if not names:
        raise IdentikitError(f"--precision {precision}: {'; '.join(skipped.values())}")
    if backend != "auto":
        if backend not in names:
            raise IdentikitError(f"--backend {backend}: {skipped[backend]}")
        names, skipped = [backend], {}
    threads = PROCESS_THREADS
    if chunk_size is not None and len(names) == 1:
        scorer = _build(target, names[0], precision, chunk_size, threads)
        return scorer, Choice(names[0], precision, chunk_size, threads, how="given")
    key = _cache_key(target, names, precision, chunk_size)
    record = None if remeasure else _read_cache(target.cache_dir).get(key)
    cached = _cached_choice(record, names=names, precision=precision, chunk_size=chunk_size)
    if cached is not None:
        try:
            scorer = _build(target, cached.backend, precision, cached.chunk_size, cached.threads)
        except BackendUnavailable:
            pass  # e.g. ONNX Runtime was uninstalled since: measure again
        else:
            _apply_threads(cached)
            cached.cache_dir, cached.cache_key = target.cache_dir, key
            return scorer, cached
    if log is not None:
        log(f"measuring scoring engines ({', '.join(names)}) for this machine and model, once")
    scorer, choice = _measure(target, names, skipped, precision, chunk_size, threads)
    _write_cache(target.cache_dir, key, choice)
    _apply_threads(choice)
    choice.cache_dir, choice.cache_key = target.cache_dir, key
    return scorer, choice


def _measure(
    target: Target,
    names: list[str],
    skipped: dict[str, str],
    precision: str,
    chunk_size: int | None,
    threads: int,
) -> tuple[Scorer, Choice]:
    chunks = (
        (chunk_size,)
        if chunk_size
        else (CUDA_CHUNKS if target.device.type == "cuda" else CPU_CHUNKS)
    )
    batch = _timing_batch(target, max(chunks))
    engines: dict[str, Scorer] = {}
    for name in [n for n in names if n != "compile"]:
        try:
            engines[name] = _build(target, name, precision, chunks[0], threads)
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
    rates: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, scorer in engines.items():
            for chunk in chunks:
                label = f"{name}@{chunk}"
                rates[label] = max(rates.get(label, 0.0), _rate(scorer, batch, chunk))
    if "compile" in names:
        # A compiled graph is specialised to one batch size: compile it once, at the chunk
        # size the other PyTorch engines liked best.
        torch_rates = {k: v for k, v in rates.items() if not k.startswith("onnx")}
        chunk = (
            int(max(torch_rates, key=lambda k: torch_rates[k]).split("@")[1])
            if torch_rates
            else chunks[0]
        )
        try:
            started = time.perf_counter()
            # _build runs the engine on the probes: this is the compilation a process pays.
            engines["compile"] = _build(target, "compile", precision, chunk, threads)
            rates["compile-start-s"] = round(time.perf_counter() - started, 1)
            label = f"compile@{chunk}"
            rates[label] = max(_rate(engines["compile"], batch, chunk) for _ in range(ROUNDS))
        except BackendUnavailable as exc:
            skipped["compile"] = str(exc)
    timed = {k: v for k, v in rates.items() if "@" in k}
    if not timed:
        raise IdentikitError(
            f"no scoring engine can run {target.name}: "
            + "; ".join(f"{b}: {why}" for b, why in skipped.items())
        )
    contenders = sorted(timed, key=timed.__getitem__, reverse=True)[:2]
    if len(contenders) == 2 and timed[contenders[0]] <= timed[contenders[1]] * CLOSE:
        for _ in range(FINAL_ROUNDS):
            for label in contenders:
                engine, chunk_text = label.split("@")
                rate = _rate(engines[engine], batch, int(chunk_text))
                timed[label] = rates[label] = max(timed[label], rate)
    best = _fastest(timed, compile_seconds=rates.get("compile-start-s", 0.0))
    name, chunk_text = best.split("@")
    chunk = int(chunk_text)
    winner = engines[name]
    winner.chunk_size = chunk
    rate = timed[best]
    fewer = threads // 2
    if fewer >= 1 and name != "compile":
        # Half the threads can win where threads wait on each other more than they compute.
        with _torch_threads(fewer):
            try:
                alternative = _build(target, name, precision, chunk, fewer)
                with_fewer = max(_rate(alternative, batch, chunk) for _ in range(ROUNDS))
            except BackendUnavailable:
                with_fewer = 0.0
        rates[f"{name}@{chunk}x{fewer}threads"] = with_fewer
        if with_fewer > rate * 1.03:
            winner, rate = alternative, with_fewer
    choice = Choice(
        backend=name,
        precision=precision,
        chunk_size=chunk,
        threads=winner.threads,
        images_per_s=round(rate),
        rates={k: round(v, 1) for k, v in rates.items()},
        skipped=skipped,
        measured=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        passed_over=_passed_over(timed, best, compile_seconds=rates.get("compile-start-s", 0.0)),
        how="measured",
    )
    return winner, choice


def _fastest(timed: dict[str, float], *, compile_seconds: float) -> str:
    """The fastest engine@chunk label; a ``compile`` one only where, over ``REPAY_IMAGES``
    images, it saves more time than its compilation (``compile_seconds``) costs."""
    best = max(timed, key=timed.__getitem__)
    others = {label: rate for label, rate in timed.items() if not label.startswith("compile")}
    if not best.startswith("compile") or not others:
        return best
    runner_up = max(others, key=others.__getitem__)
    saved = REPAY_IMAGES / timed[runner_up] - REPAY_IMAGES / timed[best]
    return best if saved >= compile_seconds else runner_up


def _passed_over(timed: dict[str, float], best: str, *, compile_seconds: float) -> dict[str, str]:
    """Why a faster ``compile`` label than ``best`` was not chosen (see :func:`_fastest`), as
    ``{"compile": reason}``; empty when the fastest won."""
    fastest = max(timed, key=timed.__getitem__)
    if fastest == best or not fastest.startswith("compile"):
        return {}
    saved = REPAY_IMAGES / timed[best] - REPAY_IMAGES / timed[fastest]
    return {
        "compile": f"its {compile_seconds:.1f} s compilation does not pay back within "
        f"{REPAY_IMAGES:,} images (it would save {saved:.1f} s)"
    }


def _build(target: Target, name: str, precision: str, chunk: int, threads: int) -> Scorer:
    """An engine, checked against eager PyTorch before it is used."""
    if name == "onnx":
        return _onnx_engine(target, precision, chunk, threads)
    assert target.module is not None
    scorer = torch_scorer(
        target.module,
        name,
        precision=precision,
        device=target.device,
        chunk_size=chunk,
        threads=threads,
    )
    return _checked(target, scorer)


def _checked(target: Target, scorer: Scorer) -> Scorer:
    """``scorer``, once its outputs on the probes are finite and close enough to eager's."""
    try:
        outputs = torch.cat(
            [scorer(part) for part in torch.split(target.probes, scorer.chunk_size)]
        )
    except BackendUnavailable:
        raise
    except Exception as exc:  # an engine may fail on a model in ways of its own
        raise BackendUnavailable(f"fails on this model ({first_line(exc)})") from None
    if not torch.isfinite(outputs).all():
        raise BackendUnavailable("returns NaN or infinite outputs")
    if scorer.precision == "fp32" and target.module is not None:
        difference = _difference(target, outputs)
        if not difference <= TOLERANCE:
            raise BackendUnavailable(f"differs from eager PyTorch by {difference:.1e}")
    elif scorer.precision == "int8":
        # Ranking only needs the order roughly right; a quantization that moves probabilities
        # wholesale (ranges badly calibrated for this model) would rank at random.
        difference = _difference(target, outputs, worst=False)
        if not difference <= INT8_TOLERANCE:
            raise BackendUnavailable(
                f"int8 moves class probabilities by {difference:.2f} on average"
            )
    return scorer


def _difference(target: Target, outputs: torch.Tensor, *, worst: bool = True) -> float:
    """Largest (or mean) difference in class probability between ``outputs`` and the model's
    own float32 outputs."""
    reference = target.reference(target.probes)
    gap = (
        target.probabilities(outputs.to(reference.device)) - target.probabilities(reference)
    ).abs()
    return float(gap.max() if worst else gap.mean())


def _onnx_engine(target: Target, precision: str, chunk: int, threads: int) -> Scorer:
    """ONNX Runtime on the model's ONNX file, or on an int8 copy of it, checked.

    For int8 the float32 file is loaded and checked first, so that a damaged or stale export
    is made again before it is quantized.
    """
    source = _onnx_file(target)

    def load(path: Path, at: str) -> Scorer:
        scorer = onnx_scorer(str(path), chunk_size=chunk, threads=threads, precision=at)
        return _checked(target, scorer)

    fp32 = _from_file(
        source,
        own=target.onnx_path is None,
        make=lambda path: _export(target, path),
        load=lambda path: load(path, "fp32"),
    )
    if precision != "int8":
        return fp32

    return _from_file(
        target.cache_dir / "onnx" / f"{file_sha256(source)}-int8.onnx",
        own=True,
        make=lambda path: _quantize(target, source, path),
        load=lambda path: load(path, "int8"),
    )


def _from_file(
    path: Path,
    *,
    own: bool,
    make: Callable[[Path], None],
    load: Callable[[Path], Scorer],
) -> Scorer:
    """``load(path)``, making the file first where it is missing.

    A cached file that identikit made (``own``) and that fails to load or fails its check (cut
    short by a full disk or a kill, damaged, stale) is deleted and made again, once, so a bad
    file never disables an engine for good; one just made that fails is deleted too, so that
    no bad file stays cached. A user's own file (not ``own``) is never touched.
    """
    if not own:
        return load(path)
    cached = path.is_file()
    if not cached:
        make(path)
    try:
        return load(path)
    except BackendUnavailable:
        _forget(path)
        if not cached:
            raise
    make(path)
    try:
        return load(path)
    except BackendUnavailable:
        _forget(path)
        raise


def _forget(path: Path) -> None:
    """Delete a cached file of ours; one that cannot be deleted is checked again next time."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _onnx_file(target: Target) -> Path:
    """Where the ONNX file for ``target`` is: its own, or the module's export, cached by hash."""
    if target.onnx_path is not None:
        return target.onnx_path
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed") from None
    assert target.module is not None
    return target.cache_dir / "onnx" / f"{module_digest(target.module, weights=True)}.onnx"


def _export(target: Target, path: Path) -> None:
    """Export the module to ONNX at ``path``, atomically."""

    assert target.module is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        module = copy.deepcopy(target.module).cpu().float()
        atomic_write_bytes(path, onnx_bytes(module, torch.rand(2, 1, 28, 28)))
    except Exception as exc:  # the exporter's own errors
        raise BackendUnavailable(f"export to ONNX failed ({first_line(exc)})") from None


def _quantize(target: Target, source: Path, path: Path) -> None:
    """Write an int8 version of the ONNX file ``source`` at ``path``."""

    try:
        model = OnnxModel(source)
    except IdentikitError as exc:
        raise BackendUnavailable(str(exc)) from None

    def shape(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), 784) if model.flat else batch

    assert target.calibration is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        quantize_onnx(
            source,
            path,
            target.calibration,
            input_name=model.input_name,
            shape_input=shape,
            batch=1 if model.fixed_batch == 1 else 64,
        )
    except ImportError:
        raise BackendUnavailable(
            "int8 needs onnx and onnxruntime: pip install 'identikit[onnx]'"
        ) from None
    except Exception as exc:  # the quantizer's own errors
        raise BackendUnavailable(f"int8 quantization failed ({first_line(exc)})") from None


def _timing_batch(target: Target, chunk: int) -> torch.Tensor:
    """Inputs to time with: the probes repeated to a few chunks' worth."""
    need = max(1024, 2 * chunk)
    reps = -(-need // len(target.probes))
    return target.probes.repeat(reps, *([1] * (target.probes.dim() - 1)))[:need]


def _rate(scorer: Scorer, batch: torch.Tensor, chunk: int) -> float:
    """Images per second scoring ``batch`` in chunks of ``chunk`` (best of short repeats)."""
    parts = torch.split(batch, chunk)
    scorer(parts[0])  # warm-up: first-call allocations and kernel choices
    done, started = 0, time.perf_counter()
    while True:
        for part in parts:
            scorer(part)
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        done += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= MEASURE_SECONDS:
            return done / elapsed


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _apply_threads(choice: Choice) -> None:
    """PyTorch engines run with the chosen thread count (ONNX Runtime's is its session's)."""
    if choice.backend != "onnx" and choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)


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


def _cache_key(target: Target, names: list[str], precision: str, chunk: int | None) -> str:
    blob = json.dumps(
        {
            "version": CACHE_VERSION,
            "machine": machine_fingerprint(target.device),
            "model": target.signature,
            "backends": names,
            "precision": precision,
            "chunk": chunk,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(folder: Path) -> dict[str, Any]:
    """The cached choices by key; a cache that cannot be read (missing, damaged, not a JSON
    object, not a regular file) is an empty one, which only costs a re-measurement."""
    try:
        data = read_json(folder / CACHE_FILE)
    except IdentikitError:
        return {}
    return data if isinstance(data, dict) else {}


# The fields a cached record holds: all of Choice's but this process's own; the optional ones
# were added later, and a cache written before them is still read.
_RECORDED = frozenset(f.name for f in fields(Choice)) - set(_LOCAL)
_OPTIONAL = frozenset({"passed_over"})


def _cached_choice(
    record: object, *, names: list[str], precision: str, chunk_size: int | None
) -> Choice | None:
    """The cached ``record`` as a Choice, or None unless every value in it is one this machine
    could have measured for this request.

    The cache is a file anyone can edit: a hand-written ``"threads": 100000`` once crashed
    PyTorch and hung ONNX Runtime. An entry that fails any check is measured again (and
    overwritten), never trusted and never an error.
    """
    if not isinstance(record, dict) or not _RECORDED - _OPTIONAL <= set(record) <= _RECORDED:
        return None
    rate = record["images_per_s"]
    valid = (
        _is_str(record["backend"])
        and record["backend"] in names
        and record["precision"] == precision
        and _whole(record["chunk_size"], 1, MAX_CHUNK)
        and chunk_size in (None, record["chunk_size"])
        and _whole(record["threads"], 1, PROCESS_THREADS)
        and (rate is None or (is_finite(rate) and rate > 0))
        and _mapping(record["rates"], is_finite)
        and _mapping(record["skipped"], _is_str)
        and (record["measured"] is None or _is_str(record["measured"]))
        and _mapping(record.get("passed_over", {}), _is_str)
    )
    return Choice(**record, how="cached") if valid else None


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _whole(value: object, low: int, high: int) -> bool:
    """Whether ``value`` is an int (JSON's ``true`` is not one) from ``low`` to ``high``."""
    return is_whole(value) and low <= value <= high


def _mapping(value: object, valid: Callable[[object], bool]) -> bool:
    """Whether ``value`` maps strings to values that pass ``valid``."""
    return isinstance(value, dict) and all(
        _is_str(key) and valid(item) for key, item in value.items()
    )


def _write_cache(folder: Path, key: str, choice: Choice) -> None:
    """Add ``choice`` to the cache; a cache that cannot be written only costs a re-measurement."""
    entries = _read_cache(folder)
    entries[key] = choice.record()
    _save_cache(folder, entries)


def _save_cache(folder: Path, entries: dict[str, Any]) -> None:
    """Write the cached choices ``entries``, atomically, or leave the cache as it was."""
    path = folder / CACHE_FILE
    with contextlib.suppress(OSError, IdentikitError):
        folder.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            # An empty folder where the cache belongs is replaced; one holding files is left
            # alone (rmdir refuses it), and choices are then measured in every process.
            path.rmdir()
        atomic_write_text(path, json.dumps(entries, indent=1, sort_keys=True))


def note_achieved_rate(
    choice: Choice,
    rate: float | None,
    *,
    seconds: float,
    log: Callable[[str], None] | None = None,
) -> bool:
    """Forget the cached ``choice`` when a sweep achieved far more than its recorded rate.

    ``rate`` is the sweep's queries a second over ``seconds``; the caller passes only a sweep
    scored throughout by ``choice``'s engine (not one resumed from a state another process
    scored). A sweep's rate includes the search's own work, so one above ``STALE_FACTOR``
    times the recorded scoring rate means the choice was measured while the machine was busy:
    its cache entry is deleted, so that the next process measures again, and ``log`` is told
    in one line. Returns whether the entry was deleted.
    """
    recorded = choice.images_per_s
    if (
        choice.cache_dir is None
        or choice.cache_key is None
        or not recorded
        or rate is None
        or seconds < STALE_MIN_SECONDS
        or rate <= STALE_FACTOR * recorded
    ):
        return False
    entries = _read_cache(choice.cache_dir)
    entry = entries.get(choice.cache_key)
    if not isinstance(entry, dict) or (entry.get("measured"), entry.get("images_per_s")) != (
        choice.measured,
        recorded,
    ):
        return False  # measured again since, by another process: that measurement stands
    del entries[choice.cache_key]
    _save_cache(choice.cache_dir, entries)
    if log is not None:
        log(
            f"this sweep ran at {rate:,.0f} queries/s, far above the {recorded:,.0f} images/s "
            f"measured for {choice.backend} on {choice.measured or 'an earlier run'} (then "
            "on a busy machine): the engines will be measured again next time"
        )
    return True
