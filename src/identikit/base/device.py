"""Choosing the torch device from ``--device auto|cpu|cuda``, and what a GPU has to offer."""

from __future__ import annotations

import torch

from identikit.base.errors import IdentikitError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` takes a CUDA GPU when there is one, else the CPU.

    ``cuda`` without a GPU is an error rather than a silent fall-back.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise IdentikitError("--device cuda: no CUDA GPU is available (use --device cpu)")
        return torch.device("cuda")
    raise IdentikitError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_CHOICES)}")


def gpu_memory(device: torch.device) -> int | None:
    """The bytes of memory of the CUDA ``device``; None where this machine has no such GPU."""
    if not torch.cuda.is_available():
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        return None
    return int(torch.cuda.get_device_properties(index).total_memory)
