"""Checkpoints: weights plus plain metadata, saved atomically, loaded with ``weights_only=True``.

Loading never unpickles arbitrary objects: ``torch.load(..., weights_only=True)`` accepts only
tensors and plain containers, so a checkpoint carrying code is refused before any of it runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from identikit.atomic import atomic_write_bytes
from identikit.errors import CheckpointError, IdentikitError

FORMAT = "identikit-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, *, architecture: str, metadata: dict[str, Any]
) -> None:
    """Save ``model``'s weights with its architecture name and ``metadata`` atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture,
        "num_classes": _num_classes(state),
        "state_dict": state,
        "metadata": metadata,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _num_classes(state: dict[str, torch.Tensor]) -> int:
    # The last weight matrix in registration order is the output layer.
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return int(weights[-1].shape[0])


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's payload, loaded safely; a clear error for anything else."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} not found")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
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
    ):
        raise CheckpointError(
            f"{file}: not a readable PyTorch checkpoint (corrupt or truncated)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not an identikit checkpoint")
    for key, kind in (("architecture", str), ("num_classes", int), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{file}: checkpoint lacks a valid {key!r}")
    return payload


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The model (in eval mode, on the CPU) and the checkpoint's metadata."""
    from identikit.models import build_model

    payload = read_checkpoint(path)
    try:
        model = build_model(payload["architecture"], payload["num_classes"])
    except IdentikitError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else "mismatch"
        raise CheckpointError(
            f"{path}: weights do not fit architecture {payload['architecture']!r}: {detail}"
        ) from None
    model.eval()
    metadata = dict(payload.get("metadata") or {})
    metadata["architecture"] = payload["architecture"]
    metadata["num_classes"] = payload["num_classes"]
    return model, metadata


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """The ``torch.nn.Module`` saved at ``path``: pixels in [0, 1], (N, 1, 28, 28) -> logits."""
    return load_checkpoint(path)[0]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, recorded in results so they name the exact model used."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
