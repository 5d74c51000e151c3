"""Checkpoints: weights plus plain metadata, saved atomically, loaded with ``weights_only=True``.

Loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` accepts only
tensors and plain containers, so a checkpoint carrying code is refused before any of it runs.
The file is read once, as bytes, and only if it is a regular file (a named pipe would block
for ever). What it declares is checked before anything is built from it: a 1 KB file that
claims four million classes is refused, not given a model of four million rows.

The format has one writer (:func:`save_checkpoint`) and one reader (:func:`read_checkpoint`).
Its version (``VERSION``) is checked on reading: a checkpoint of a newer identikit is refused
in one line; one without a version reads as version 1. A checkpoint records the shape of the
images its model takes (``input_shape``, C x H x W, any shape the architecture can be built
for); one written before it did holds MNIST's.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import CheckpointError, IdentikitError
from identikit.base.limits import CLASSES, MODEL_BYTES
from identikit.base.safe_files import read_regular
from identikit.base.shapes import ImageShape
from identikit.base.values import is_finite, is_whole
from identikit.data.datasets import MNIST_SHAPE
from identikit.models import build_model, get_architecture

FORMAT = "identikit-checkpoint"
VERSION = 1
# Where a model file of another kind is used instead.
_OTHER_FORMATS = "is used as it is by search, compare, certainty and evaluate"


# The metadata that other modules read, and what each field must be when present (None is
# absent). A field of another kind is refused rather than dropped: the report prints the test
# accuracy as fact, and a checkpoint that lies about one field is not trusted for the others.
METADATA_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "test_accuracy": (lambda v: is_finite(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "epochs": (lambda v: is_whole(v) and v >= 0, "a whole number >= 0"),
    "seed": (is_whole, "a whole number"),
    "precision": (lambda v: isinstance(v, str), "text"),
}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    architecture: str,
    metadata: dict[str, Any],
    input_shape: ImageShape = MNIST_SHAPE,
) -> None:
    """Save ``model``'s weights with its architecture name, the shape of the images it takes
    and ``metadata``, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    classes = _output_rows(state)
    if classes is None:
        raise CheckpointError(f"cannot save {path}: the model has no output layer (2-D weight)")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture,
        "num_classes": classes,
        "input_shape": list(input_shape.dims),
        "state_dict": state,
        "metadata": metadata,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _output_rows(state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the output layer: the last weight matrix in registration order."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return int(weights[-1].shape[0]) if weights else None


def read_checkpoint(path: str | os.PathLike[str], *, data: bytes | None = None) -> dict[str, Any]:
    """The checkpoint's payload, loaded safely and checked; a clear error for anything else.

    ``data``: the file's bytes where the caller has read them already (to hash the very bytes
    it loads); otherwise the file is read here, once.
    """
    file = Path(path)
    if data is None:
        try:
            data = read_regular(file, limit=MODEL_BYTES)
        except IdentikitError as exc:
            raise CheckpointError(str(exc)) from None
    _check_container(file, data)
    return check_payload(file, _unpickle(file, data))


def _zip_names(data: bytes) -> list[str] | None:
    """The member names of a zip archive, or None when ``data`` is none."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _check_container(file: Path, data: bytes) -> None:
    """Refuse what is not a PyTorch zip archive, or is TorchScript's, saying what it is."""
    names = _zip_names(data)
    if names is None and data.startswith(b"PK"):
        raise CheckpointError(f"{file}: not a readable PyTorch checkpoint (corrupt or truncated)")
    if names is None:
        raise CheckpointError(
            f"{file}: not an identikit checkpoint (not a PyTorch zip file); an ONNX model "
            f"{_OTHER_FORMATS}"
        )
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(
            f"{file} is TorchScript, not an identikit checkpoint; a TorchScript model "
            f"{_OTHER_FORMATS}"
        )


def _unpickle(file: Path, data: bytes) -> Any:
    """``torch.load`` with ``weights_only``: plain containers and tensors, never code."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise CheckpointError(
                f"{file}: refused: it holds Python objects other than weights (possibly code); "
                "identikit only loads plain weights"
            ) from None
        raise CheckpointError(f"{file}: not a readable PyTorch checkpoint") from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        KeyError,
        AttributeError,
        UnicodeDecodeError,
        TypeError,
        IndexError,
        MemoryError,
        struct.error,  # a number cut short: the weights-only unpickler reads it with struct
    ):
        raise CheckpointError(
            f"{file}: not a readable PyTorch checkpoint (corrupt or truncated)"
        ) from None


def _shown(value: Any) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_payload(file: Path, payload: Any) -> dict[str, Any]:
    """``payload``, refused if a field would fail, or allocate without bound, when built."""
    if _is_bare_state_dict(payload):
        raise CheckpointError(
            f"{file} is not an identikit checkpoint but a bare state_dict (weights without the "
            "architecture): export the model to ONNX (torch.onnx.export(model, example, "
            '"model.onnx")) and pass that file'
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not an identikit checkpoint")
    _check_version(file, payload.get("version", 1))
    architecture = payload.get("architecture")
    if not isinstance(architecture, str):
        raise CheckpointError(f"{file}: checkpoint lacks a valid 'architecture'")
    try:
        get_architecture(architecture)
    except IdentikitError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    state = _check_state(file, payload.get("state_dict"))
    _check_classes(file, payload.get("num_classes"), state)
    _check_metadata(file, payload.get("metadata"))
    recorded_shape(file, payload)
    return payload


def _check_version(file: Path, version: Any) -> None:
    """A version this code reads: a whole number from 1 to ``VERSION``."""
    if not is_whole(version) or version < 1:
        raise CheckpointError(
            f"{file}: 'version' must be a whole number >= 1, got {_shown(version)}"
        )
    if version > VERSION:
        raise CheckpointError(
            f"{file} was written by a newer identikit (checkpoint format version {version}; "
            f"this one reads up to {VERSION}): upgrade identikit to load it"
        )


def recorded_shape(file: Path, payload: dict[str, Any]) -> ImageShape:
    """The shape of the images the checkpoint's model takes (MNIST's where none is recorded)."""
    dims = payload.get("input_shape")
    if dims is None:
        return MNIST_SHAPE
    if not isinstance(dims, list | tuple) or len(dims) != 3 or not all(map(is_whole, dims)):
        raise CheckpointError(f"{file}: 'input_shape' must be C, H, W, got {_shown(dims)}")
    try:
        # A recorded shape is the user's file's word: as large a one as --input-shape is refused.
        return ImageShape.of(dims).check_size("its 'input_shape'")
    except IdentikitError as exc:
        raise CheckpointError(f"{file}: {exc}") from None


def _is_bare_state_dict(payload: Any) -> bool:
    """A ``torch.save(model.state_dict())`` file: names to tensors, and nothing else. It
    holds no architecture, so identikit cannot build the model it belongs to."""
    return (
        isinstance(payload, dict)
        and bool(payload)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items())
    )


def _check_state(file: Path, state: Any) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: checkpoint lacks a valid 'state_dict'")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{file}: state_dict entry {_shown(key)} is not a named tensor")
    return state


def _check_classes(file: Path, classes: Any, state: dict[str, torch.Tensor]) -> None:
    """``num_classes`` must be a whole number in 2 .. the limit, and the output layer's rows.

    Checked before the model is built: ``build_model`` allocates a layer of that many rows.
    """
    if not is_whole(classes):
        got = _shown(classes)
        raise CheckpointError(f"{file}: 'num_classes' must be a whole number, got {got}")
    if classes < 2:
        raise CheckpointError(f"{file}: 'num_classes' must be at least 2, got {classes}")
    try:
        CLASSES.check(classes, str(file))
    except IdentikitError as exc:
        raise CheckpointError(str(exc)) from None
    rows = _output_rows(state)
    if rows is None:
        raise CheckpointError(f"{file}: state_dict has no output layer (no 2-D weight)")
    if rows != classes:
        raise CheckpointError(
            f"{file}: declares {classes} classes but its output layer has {rows} rows"
        )


def _check_metadata(file: Path, metadata: Any) -> None:
    """Metadata is a dictionary (or absent), and the fields others read are of their kind."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"{file}: 'metadata' must be a dictionary, got {type(metadata).__name__}"
        )
    for key, (valid, expected) in METADATA_FIELDS.items():
        value = metadata.get(key)
        if value is not None and not valid(value):
            raise CheckpointError(
                f"{file}: metadata {key!r} must be {expected}, got {_shown(value)}"
            )


def load_checkpoint(
    path: str | os.PathLike[str], *, data: bytes | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The model (in eval mode, on the CPU) and the checkpoint's metadata, with its
    ``architecture``, ``num_classes`` and ``input_shape`` (an ImageShape) added (``data``: as
    for :func:`read_checkpoint`)."""
    payload = read_checkpoint(path, data=data)
    shape = recorded_shape(Path(path), payload)
    model = _rebuilt(Path(path), payload, shape)
    model.eval()
    metadata = dict(payload.get("metadata") or {})
    metadata["architecture"] = payload["architecture"]
    metadata["num_classes"] = payload["num_classes"]
    metadata["input_shape"] = shape
    return model, metadata


def _rebuilt(file: Path, payload: dict[str, Any], shape: ImageShape) -> nn.Module:
    """The checkpoint's architecture built for ``shape``, holding its weights.

    The model is first built without memory (on PyTorch's ``meta`` device) and its tensors'
    shapes compared with the file's: a small file that declares a huge image shape is refused
    before a layer of that size is allocated. Only then is memory given and the weights put in.
    """
    architecture, state = payload["architecture"], payload["state_dict"]
    try:
        with torch.device("meta"):
            model = build_model(architecture, payload["num_classes"], shape)
    except IdentikitError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise CheckpointError(
            f"{file}: weights do not fit architecture {architecture!r} for images of {shape}: "
            f"{_difference(expected, found)}"
        )
    model.to_empty(device="cpu")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:  # e.g. a tensor of a kind that cannot be copied
        first = str(exc).strip().splitlines() or ["mismatch"]
        raise CheckpointError(f"{file}: weights do not fit {architecture!r}: {first[-1]}") from None
    return model


def _difference(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """The first way ``found`` tensor shapes differ from the ``expected`` ones, in words."""
    for key, dims in expected.items():
        if key not in found:
            return f"missing {key!r}"
        if found[key] != dims:
            return f"{key!r} is {list(found[key])}, the model's is {list(dims)}"
    extra = next(k for k in found if k not in expected)
    return f"unexpected {extra!r}"


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """The ``torch.nn.Module`` saved at ``path``: pixels in [0, 1], images (N, C, H, W) of the
    checkpoint's ``input_shape`` -> logits."""
    return load_checkpoint(path)[0]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, recorded in results so they name the exact model used."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
