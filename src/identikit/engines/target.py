"""The model to score, as the engine tuner (:mod:`identikit.engines.tuning`) sees it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from identikit.base.shapes import ImageShape

# Eager PyTorch is also run on the probes in batches of these sizes, to see how much it differs
# from itself (Target.self_difference).
SELF_CHECK_BATCHES = (1, 3)


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

    @functools.cached_property
    @torch.inference_mode()
    def self_difference(self) -> float:
        """How far eager PyTorch's class probabilities on the probes move when they are scored
        in batches of other sizes (:data:`SELF_CHECK_BATCHES`): a GPU picks its kernels per
        batch size, and they sum in other orders. Measured once per target."""
        reference = self.probabilities(self.reference(self.probes))
        own = 0.0
        for size in SELF_CHECK_BATCHES:
            parts = [self.reference(part) for part in torch.split(self.probes, size)]
            alone = self.probabilities(torch.cat(parts).to(reference.device))
            own = max(own, float((alone - reference).abs().max()))
        return own

    @property
    def input_shape(self) -> ImageShape:
        """The shape of one model input, as the probes have it (H, W, C for an NHWC model: its
        size, which chunk sizes are held to, is the same)."""
        return ImageShape.of(tuple(self.probes.shape[1:]))
