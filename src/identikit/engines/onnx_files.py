"""The ONNX Runtime engine's scorer, and the ONNX files it runs: the user's own, or identikit's
export of a PyTorch module (cached by the hash of its weights), and an int8 copy of either
(cached by the hash of its source).

A cached file that fails to load or fails its check (cut short by a full disk or a kill,
damaged, stale) is made again, once; a user's own file is never touched.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError, first_line
from identikit.base.shapes import ImageShape
from identikit.engines.choices import make_cache_folder
from identikit.engines.quantize import quantize_onnx
from identikit.engines.registry import Build
from identikit.engines.scorers import BackendUnavailable, Scorer, module_digest
from identikit.engines.target import Target
from identikit.models.checkpoint import file_sha256
from identikit.models.export import onnx_bytes
from identikit.models.onnx_model import OnnxModel


def onnx_scorer(
    path: str, *, chunk_size: int, threads: int, precision: str, input_shape: ImageShape
) -> Scorer:
    """ONNX Runtime on the model file ``path`` (float32, or an int8 version of the model), for
    images of ``input_shape``."""

    try:
        model = OnnxModel(path, threads=threads, input_shape=input_shape)
    except IdentikitError as exc:
        raise BackendUnavailable(str(exc)) from None

    def one_core() -> Scorer:
        return onnx_scorer(
            path, chunk_size=chunk_size, threads=1, precision=precision, input_shape=input_shape
        )

    return Scorer("onnx", precision, chunk_size, threads, model, one_core=one_core)


def onnx_engine(spec: Build) -> Scorer:
    """ONNX Runtime on the model's ONNX file, or on an int8 copy of it, passed through
    ``spec.check`` (which raises BackendUnavailable for an engine that fails it).

    For int8 the float32 file is loaded and checked first, so that a damaged or stale export
    is made again before it is quantized.
    """
    target = spec.target
    source = _onnx_file(target)

    def load(path: Path, at: str) -> Scorer:
        scorer = onnx_scorer(
            str(path),
            chunk_size=spec.chunk_size,
            threads=spec.threads,
            precision=at,
            input_shape=target.input_shape,
        )
        return spec.check(scorer)

    fp32 = _from_file(
        source,
        own=target.onnx_path is None,
        make=lambda path: _export(target, path),
        load=lambda path: load(path, "fp32"),
    )
    if spec.precision != "int8":
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
        make_cache_folder(target.cache_dir, path.parent)  # never through a link
        module = copy.deepcopy(target.module).cpu().float()
        atomic_write_bytes(path, onnx_bytes(module, torch.rand(target.input_shape.batch(2))))
    except Exception as exc:  # the exporter's own errors
        raise BackendUnavailable(f"export to ONNX failed ({first_line(exc)})") from None


def _quantize(target: Target, source: Path, path: Path) -> None:
    """Write an int8 version of the ONNX file ``source`` at ``path``."""

    try:
        model = OnnxModel(source, input_shape=target.input_shape)
    except IdentikitError as exc:
        raise BackendUnavailable(str(exc)) from None

    def shape(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), math.prod(batch.shape[1:])) if model.flat else batch

    assert target.calibration is not None
    try:
        make_cache_folder(target.cache_dir, path.parent)  # never through a link
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
