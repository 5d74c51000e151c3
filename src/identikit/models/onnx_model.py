"""Scoring with ONNX Runtime: any model exported to ONNX, from any framework.

The model's first input may be (N, 1, 28, 28) or flattened (N, 784), with any name and a dynamic
or fixed batch size; a model fixed to batch 1 is run image by image over each chunk (slower,
still correct). The first output must be (N, classes): one row per input, whatever the number
of classes (a 100,000-class model is scored a chunk of images at a time like any other).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.errors import IdentikitError, first_line
from identikit.base.safe_files import display_name


class OnnxModel:
    """An ONNX model as a callable from a float tensor (N, 1, 28, 28) to its first output.

    ``data`` is the file's content when the caller has read it already (so that the model run
    is the very one whose hash is recorded); ``path`` then only names it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
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
        if len(shape) == 4 and [_dim(d) for d in shape[1:]] in ([1, 28, 28], [None, 28, 28]):
            self.flat = False
        elif len(shape) == 2 and _dim(shape[1]) in (784, None):
            self.flat = True
        else:
            raise IdentikitError(
                f"{name}: input {self.input_name!r} has shape {shape}; expected "
                "(N, 1, 28, 28) or (N, 784)"
            )
        self.fixed_batch = _dim(shape[0])
        if self.fixed_batch not in (None, 1):
            raise IdentikitError(
                f"{name}: fixed batch size {self.fixed_batch}; identikit needs a "
                "dynamic batch or a batch of 1"
            )

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        array = inputs.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.flat:
            array = array.reshape(len(array), 784)
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


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _shape(shape: tuple[int, ...]) -> str:
    """A shape as messages write it: ``(4, 10, 1)``, ``(40)``, ``()``."""
    return f"({', '.join(str(n) for n in shape)})"
