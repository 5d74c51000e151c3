"""Choosing the torch device from ``--device auto|cpu|cuda``."""

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
