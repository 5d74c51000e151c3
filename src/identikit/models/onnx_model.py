"""Scoring with ONNX Runtime: any model exported to ONNX, from any framework.

The model's first input may be a batch of images (N, C, H, W) or of flattened images
(N, C x H x W), with any name and a dynamic or fixed batch size; a model fixed to batch 1 is run
image by image over each chunk (slower, still correct). The first output must be (N, classes):
one row per input, whatever the number of classes (a 100,000-class model is scored a chunk of
images at a time like any other).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.errors import IdentikitError, first_line
from identikit.base.safe_files import display_name
from identikit.base.shapes import ImageShape
from identikit.models.info import batch_text


class OnnxModel:
    """An ONNX model as a callable from a float tensor of images (N, C, H, W) of
    ``input_shape`` to its first output.

    ``data`` is the file's content when the caller has read it already (so that the model run
    is the very one whose hash is recorded); ``path`` then only names it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_shape: ImageShape,
        threads: int | None = None,
        data: bytes | None = None,
    ) -> None:
        name = display_name(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise IdentikitError(
                "ONNX models need onnxruntime: pip install 'identikit[onnx]'"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        # ONNX Runtime's threads spin for a while after each run by default; between runs the
        # search draws masks on the same cores, and spinning threads slow that down (the search
        # loop went from 0.84-0.92 to 0.95-0.99 of ONNX Runtime's own rate without spinning).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path) if data is None else data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise IdentikitError(f"{name}: not a usable ONNX model ({first_line(exc)})") from None
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.output_name = self.session.get_outputs()[0].name
        shape: list[Any] = list(first.shape)
        flat = _flat(shape, input_shape)
        if flat is None:
            raise IdentikitError(
                f"{name}: input {self.input_name!r} has shape {shape}; expected "
                f"{batch_text(input_shape)} or (N, {input_shape.size})"
            )
        self.flat = flat
        self.fixed_batch = _dim(shape[0])
        if self.fixed_batch not in (None, 1):
            raise IdentikitError(
                f"{name}: fixed batch size {self.fixed_batch}; identikit needs a "
                "dynamic batch or a batch of 1"
            )

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        array = inputs.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.flat:
            array = array.reshape(len(array), math.prod(array.shape[1:]))
        if self.fixed_batch == 1:
            rows = [self._run(array[i : i + 1]) for i in range(len(array))]
            return torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0)
        return torch.from_numpy(self._run(np.ascontiguousarray(array)))

    def _run(self, array: np.ndarray) -> np.ndarray:
        out = np.asarray(self.session.run(None, {self.input_name: array})[0])
        if out.ndim != 2 or out.shape[0] != len(array):
            # Flattening (N, classes, 1) or (N * classes,) to rows would pass off another
            # layout's numbers as class scores; the model is refused instead, when first probed.
            raise IdentikitError(
                f"{display_name(self.path)}: output {self.output_name!r} has shape "
                f"{_shape(out.shape)}; expected (N, classes)"
            )
        return out


def _flat(shape: list[Any], image: ImageShape) -> bool | None:
    """Whether an input of ``shape`` takes flattened images of shape ``image`` (False: whole
    ones; None: neither). Batch and channel dimensions may be dynamic (named, not numbered)."""
    dims = [_dim(d) for d in shape[1:]]
    if len(shape) == 4 and dims in (list(image.dims), [None, image.height, image.width]):
        return False
    if len(shape) == 2 and dims[0] in (image.size, None):
        return True
    return None


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _shape(shape: tuple[int, ...]) -> str:
    """A shape as messages write it: ``(4, 10, 1)``, ``(40)``, ``()``."""
    return f"({', '.join(str(n) for n in shape)})"
