"""Scoring with ONNX Runtime: any model exported to ONNX, from any framework.

The model's first input may be a batch of images (N, C, H, W), of images laid out channels
last (N, H, W, C), or of flattened images (N, C x H x W), with any name and a dynamic or fixed
batch size; a model fixed to batch 1 is run image by image over each chunk (slower, still
correct). The first output must be (N, classes): one row per input, whatever the number of
classes (a 100,000-class model is scored a chunk of images at a time like any other).

:func:`onnx_input` reads the shape of the model's images, and its layout, from the input's
static dimensions, or takes the user's where they are dynamic.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.errors import IdentikitError, first_line
from identikit.base.safe_files import display_name
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.info import batch_text
from identikit.models.onnx_graph import OnnxGraph, load_graph

# The metadata key (``metadata_props``) under which an ONNX file records its class names, a JSON
# list of texts: ``identikit export`` writes it, and any tool may.
NAMES_KEY = "identikit.class_names"

# Channel counts that mark a last dimension as channels (grey, RGB): an input (N, 32, 32, 3) is
# laid out channels last, (N, 3, 32, 32) channels first.
_CHANNEL_COUNTS = (1, 3)


class OnnxModel:
    """An ONNX model as a callable from a float tensor of model inputs (N, *``input_shape``)
    to its first output.

    ``input_shape`` is the shape of one input as the model lays it out ((C, H, W), or (H, W, C)
    for a model that takes channels last); None: checked later, with :meth:`expect`, once
    :func:`onnx_input` has read it from :attr:`input_dims`. ``data`` is the file's content when
    the caller has read it already (so that the model run is the very one whose hash is
    recorded); ``path`` then only names it.

    Scores come from ONNX Runtime; gradients from the same graph run in PyTorch by identikit's
    own interpreter (:meth:`differentiable`), built the first time they are asked for.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_shape: ImageShape | None = None,
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
        self.data = data
        self._graph: OnnxGraph | None = None
        self._graph_lock = threading.Lock()  # lanes may ask for gradients at once
        self.threads = options.intra_op_num_threads
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_dims: list[int | None] = [_dim(d) for d in first.shape]
        self.flat = len(self.input_dims) == 2
        if input_shape is not None:
            self.expect(input_shape)
        self.fixed_batch = self.input_dims[0] if self.input_dims else None
        if self.fixed_batch not in (None, 1):
            raise IdentikitError(
                f"{name}: fixed batch size {self.fixed_batch}; identikit needs a "
                "dynamic batch or a batch of 1"
            )

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The class names the file's metadata records under :data:`NAMES_KEY` (a JSON list of
        texts, as ``identikit export`` writes it), or None where it records none. Names that
        are not such a list are a one-line error: a table would show them wrongly."""
        recorded = self.session.get_modelmeta().custom_metadata_map.get(NAMES_KEY)
        if recorded is None:
            return None
        try:
            names = json.loads(recorded)
        except ValueError:
            names = None
        if not (
            isinstance(names, list)
            and len(names) >= 2
            and all(isinstance(name, str) and name.strip() for name in names)
        ):
            raise IdentikitError(
                f"{display_name(self.path)}: metadata {NAMES_KEY!r} is not a list of at least "
                "two class names (give --class-names to override it)"
            )
        return tuple(names)

    def expect(self, input_shape: ImageShape) -> None:
        """Check that the model's input takes inputs of ``input_shape`` (in the model's own
        layout), whole or flattened; a one-line error otherwise."""
        flat = _flat(self.input_dims, input_shape)
        if flat is None:
            raise IdentikitError(
                f"{display_name(self.path)}: input {self.input_name!r} has shape "
                f"{dims_text(self.input_dims)}; expected {batch_text(input_shape)} or "
                f"(N, {input_shape.size})"
            )
        self.flat = flat

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        array = inputs.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.flat:
            array = array.reshape(len(array), math.prod(array.shape[1:]))
        if self.fixed_batch == 1:
            rows = [self._run(array[i : i + 1]) for i in range(len(array))]
            return torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0)
        return torch.from_numpy(self._run(np.ascontiguousarray(array)))

    def differentiable(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model as a differentiable torch function of the same inputs as :meth:`__call__`
        (flattened here where the model takes rows): its graph run in PyTorch by
        :func:`~identikit.models.onnx_graph.load_graph`, read once, on first use. A one-line
        :class:`IdentikitError` where the graph has an operator the interpreter does not run
        or is quantized (int8): scoring by ONNX Runtime still works."""
        self.graph()
        return self._differentiable

    def graph(self) -> OnnxGraph:
        """The graph :meth:`differentiable` runs (read once, on first use)."""
        with self._graph_lock:
            if self._graph is None:
                data = self.data if self.data is not None else self.path.read_bytes()
                self._graph = load_graph(data, display_name(self.path))
            return self._graph

    def _differentiable(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self._graph is not None
        if self.flat:
            inputs = inputs.reshape(len(inputs), math.prod(inputs.shape[1:]))
        outputs: torch.Tensor = self._graph(inputs)
        return outputs

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


def _flat(shape: list[int | None], image: ImageShape) -> bool | None:
    """Whether an input of ``shape`` takes flattened images of shape ``image`` (False: whole
    ones; None: neither). Any dimension may be dynamic (None)."""
    dims = shape[1:]
    if len(shape) == 4 and all(d in (None, e) for d, e in zip(dims, image.dims, strict=True)):
        return False
    if len(shape) == 2 and dims[0] in (image.size, None):
        return True
    return None


def _dim(value: Any) -> int | None:
    """A static dimension; None for a dynamic one (named, or not positive)."""
    return value if isinstance(value, int) and value > 0 else None


def dims_text(dims: list[int | None]) -> str:
    """An input's dimensions as messages write them, ``N`` for a dynamic one: ``Nx32x32x3``."""
    return "x".join("N" if d is None else str(d) for d in dims)


def onnx_input(
    name: str, dims: list[int | None], *, given: ImageShape | None, layout: str | None
) -> tuple[ImageShape, str]:
    """The shape (C x H x W) of the images an ONNX input of ``dims`` takes, and its layout.

    Static dimensions say the shape; ``given`` (``--input-shape``) must agree with them, and
    says the dynamic ones. Without it, a dynamic input that fits MNIST's images is taken for
    MNIST's (what identikit has always done); any other is a one-line error asking for it.
    ``layout`` None: channels last where the dimensions say so unambiguously (see
    :func:`detect_layout`), else channels first.
    """
    shape, chosen = _image_input(name, dims, given=given, layout=layout)
    # Static dimensions can ask for as much as --input-shape: checked before any probe.
    return shape.check_size(f"{name}: images"), chosen


def _image_input(
    name: str, dims: list[int | None], *, given: ImageShape | None, layout: str | None
) -> tuple[ImageShape, str]:
    """:func:`onnx_input`, before the size of the images is checked."""
    if len(dims) == 2:
        return _flat_input(name, dims[1], given), layout or "nchw"
    if len(dims) != 4:
        raise IdentikitError(
            f"{name}: input has shape {dims_text(dims)}; expected (N, C, H, W), (N, H, W, C) "
            "or (N, values)"
        )
    chosen = layout or detect_layout(dims)
    body = dims[1:]
    c, h, w = body if chosen == "nchw" else (body[2], body[0], body[1])
    if given is not None:
        if any(d not in (None, g) for d, g in zip((c, h, w), given.dims, strict=True)):
            raise IdentikitError(
                f"{name}: --input-shape {given} does not fit the model's input "
                f"{dims_text(dims)} (layout {chosen}, images {_image_text(c, h, w)})"
            )
        return given, chosen
    if c is not None and h is not None and w is not None:
        return ImageShape(c, h, w), chosen
    if all(d in (None, m) for d, m in zip((c, h, w), MNIST_SHAPE.dims, strict=True)):
        return MNIST_SHAPE, chosen
    raise IdentikitError(
        f"{name}: input {dims_text(dims)} has dynamic dimensions; give its image shape with "
        "--input-shape C,H,W"
    )


def _flat_input(name: str, size: int | None, given: ImageShape | None) -> ImageShape:
    """The image shape of a flat input (N, ``size``): ``given``'s if its size fits, MNIST's
    if it fits and nothing is given."""
    if given is not None:
        if size not in (None, given.size):
            raise IdentikitError(
                f"{name}: --input-shape {given} ({given.size} values) does not fit the "
                f"model's input Nx{size}"
            )
        return given
    if size in (None, MNIST_SHAPE.size):
        return MNIST_SHAPE
    raise IdentikitError(
        f"{name}: input takes flat images of {size} values; give their shape with "
        "--input-shape C,H,W"
    )


def detect_layout(dims: list[int | None]) -> str:
    """``nhwc`` for an input (N, H, W, C) whose static dimensions say so unambiguously (the
    last is 1 or 3 channels, the first after the batch is not), else ``nchw``."""
    if len(dims) == 4 and None not in dims[1:]:
        first, last = dims[1], dims[3]
        if last in _CHANNEL_COUNTS and first not in _CHANNEL_COUNTS:
            return "nhwc"
    return "nchw"


def _image_text(*dims: int | None) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _shape(shape: tuple[int, ...]) -> str:
    """A shape as messages write it: ``(4, 10, 1)``, ``(40)``, ``()``."""
    return f"({', '.join(str(n) for n in shape)})"
