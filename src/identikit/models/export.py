"""Exporting a checkpoint to ONNX or TorchScript, with a chosen input convention.

The exported model expects its inputs the way ``preprocessing`` describes (e.g. pixels in
[-1, 1], normalised by a mean and std per channel, laid out channels last) and returns the
chosen kind of outputs, so that loading it back with the same options reproduces the original
model exactly: a round trip that tests every preprocessing path, and a way to hand identikit's
models to other tools. A checkpoint is exported for the image shape it records.
"""

from __future__ import annotations

import io
import os
import warnings

import torch
from torch import nn

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.checkpoint import load_checkpoint
from identikit.models.preprocessing import Preprocessing

FORMATS = ("onnx", "torchscript")
# The image shape a bare module (not a checkpoint, which records its own) is exported for.
EXPORTED_SHAPE = MNIST_SHAPE


class _Exported(nn.Module):
    """model inputs -> pixels -> the wrapped model -> outputs of the chosen kind.

    ``flatten``: the inputs are images of ``shape`` flattened to rows (in the layout of
    ``preprocessing``), made images again here.
    """

    def __init__(
        self, model: nn.Module, preprocessing: Preprocessing, *, shape: ImageShape, flatten: bool
    ) -> None:
        super().__init__()
        self.model = model
        self.preprocessing = preprocessing
        self.dims = preprocessing.model_dims(shape)
        self.flatten = flatten

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            inputs = inputs.reshape(-1, *self.dims)
        logits: torch.Tensor = self.model(self.preprocessing.to_pixels(inputs))
        kind = self.preprocessing.outputs or "logits"
        if kind == "probabilities":
            return torch.softmax(logits, dim=1)
        if kind == "log-probabilities":
            return torch.log_softmax(logits, dim=1)
        return logits


def export_model(
    model: nn.Module | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    preprocessing: Preprocessing | None = None,
    flatten: bool = False,
    fixed_batch: bool = False,
) -> None:
    """Write ``model`` (pixels in [0, 1] -> logits) as ONNX or TorchScript, atomically.

    ``model`` is a checkpoint file, exported for the image shape it records, or a module,
    exported for :data:`EXPORTED_SHAPE`. The exported model takes inputs as ``preprocessing``
    says (range, mean and std, layout) and returns its kind of outputs. ``flatten`` makes the
    input a batch of flattened images (N, C x H x W); ``fixed_batch`` fixes the batch size to
    1 (ONNX).
    """
    if fmt not in FORMATS:
        raise IdentikitError(f"--format must be one of {', '.join(FORMATS)}")
    preprocessing = preprocessing or Preprocessing()
    shape = EXPORTED_SHAPE
    if not isinstance(model, nn.Module):
        model, meta = load_checkpoint(model)
        shape = meta["input_shape"]
    preprocessing.check(shape)
    wrapped = _Exported(model.eval().cpu(), preprocessing, shape=shape, flatten=flatten)
    dims = (shape.size,) if flatten else preprocessing.model_dims(shape)
    example = torch.rand(1 if fixed_batch else 2, *dims)
    if fmt == "onnx":
        atomic_write_bytes(out, onnx_bytes(wrapped, example, fixed_batch=fixed_batch))
        return
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's chatter
        torch.jit.save(torch.jit.trace(wrapped, example), buffer)  # type: ignore[no-untyped-call]
    atomic_write_bytes(out, buffer.getvalue())


def onnx_bytes(module: nn.Module, example: torch.Tensor, *, fixed_batch: bool = False) -> bytes:
    """``module`` as ONNX (input ``input``, output ``output``), traced on ``example``, with a
    dynamic batch size unless ``fixed_batch``.

    The TorchScript-based exporter takes plain and TorchScript modules alike.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding and its future
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,  # type: ignore[arg-type]
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=None if fixed_batch else {"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()
