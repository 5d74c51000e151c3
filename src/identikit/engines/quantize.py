"""An int8 copy of an ONNX model, for ranking candidates fast (``--precision int8``).

Static post-training quantization with ONNX Runtime's tools: weights to int8 per output
channel, activations to uint8 with ranges calibrated on images like the ones a search scores
(sparse random perturbations of a blank image, denser ones, uniform noise, flat gray), in the
QDQ format that ONNX Runtime fuses into integer kernels (VNNI instructions where the CPU has
them). Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", describe the scheme. The int8 model only ranks candidates:
a search re-scores every kept candidate with the float32 model.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.atomic import atomic_write_bytes
from identikit.base.shapes import ImageShape

CALIBRATION_IMAGES = 512


def calibration_pixels(shape: ImageShape, seed: int = 0) -> torch.Tensor:
    """Pixel images in [0, 1] of ``shape`` spanning what searches score, from sparse to dense."""
    generator = torch.Generator().manual_seed(seed)
    quarter = CALIBRATION_IMAGES // 4
    groups = []
    for density in (0.05, 0.2, 0.5):
        u = torch.rand(shape.batch(quarter), generator=generator)
        groups.append(torch.rand(shape.batch(quarter), generator=generator) * (u < density))
    groups.append(torch.rand(shape.batch(quarter - 2), generator=generator))
    groups.append(torch.stack([torch.zeros(shape.dims), torch.full(shape.dims, 0.5)]))
    return torch.cat(groups)


def quantize_onnx(
    source: Path,
    destination: Path,
    inputs: torch.Tensor,
    *,
    input_name: str,
    shape_input: Callable[[np.ndarray], np.ndarray],
    batch: int,
) -> None:
    """Write an int8 version of the ONNX model ``source`` to ``destination``, atomically.

    ``inputs`` are calibration inputs in the model's own input space; ``shape_input`` reshapes
    a batch of them the way the model takes it (e.g. flattened); ``batch`` is the batch size
    the model accepts (1 for a model fixed to single images).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    array = inputs.detach().cpu().numpy().astype(np.float32)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, Any]] = iter(
                {input_name: shape_input(array[start : start + batch])}
                for start in range(0, len(array), batch)
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        with contextlib.suppress(Exception):  # shape inference helps, but is optional
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(source), str(prepared))
        output = Path(folder) / "int8.onnx"
        quantize_static(
            str(prepared if prepared.is_file() else source),
            str(output),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        atomic_write_bytes(destination, output.read_bytes())
