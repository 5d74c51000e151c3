"""The model to score, as the engine tuner (:mod:`identikit.engines.tuning`) sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from identikit.base.shapes import ImageShape


@dataclass
class Target:
    """The model to score, as the tuner needs it.

    ``module`` is the PyTorch model (None for an ONNX file, ``onnx_path``); ``reference`` gives
    the float32 eager outputs that engines are checked against, and ``probabilities`` turns
    outputs into class probabilities. ``probes`` are model inputs, laid out as the model takes
    them ((N, C, H, W), or (N, H, W, C) for an NHWC model), to check and time with;
    ``cache_dir`` holds the cached choices and the exported and quantized model files.
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

    @property
    def input_shape(self) -> ImageShape:
        """The shape of one model input, as the probes have it (H, W, C for an NHWC model: its
        size, which chunk sizes are held to, is the same)."""
        return ImageShape.of(tuple(self.probes.shape[1:]))
