"""Exporting a model to ONNX or TorchScript: identikit's convention carried into the file.

Two directions, one writer:

* a checkpoint (identikit's own model, pixels in [0, 1] -> logits) is written to take its
  inputs the way ``preprocessing`` describes (pixels in [-1, 1], a mean and std per channel,
  channels last, probabilities out), so that loading it back with the same options reproduces
  the model exactly: a way to hand identikit's models to other tools, and a round trip that
  tests every preprocessing path (:func:`export_model`);
* a model of any convention (a TorchScript program, an ONNX graph run by identikit's
  interpreter) is wrapped so that the file written takes identikit's own convention, N x C x H
  x W pixels in [0, 1], and returns logits: the conventions travel with the model, and every
  command then uses the file without convention flags (:func:`export_converted`).

Batch normalisation is kept as BatchNormalization nodes rather than folded into the
convolutions before it (the exporter's eval-mode peephole pass folds them), so that a tool
that looks for a network's normalisation layers finds them in the file. Class names, where the
model has them, are recorded in the ONNX file's metadata under :data:`CLASS_NAMES_KEY` (a JSON
list), read back by identikit when it loads the file.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models.checkpoint import load_checkpoint
from identikit.models.preprocessing import INPUT_RANGES, OUTPUT_KINDS, Preprocessing, Values

FORMATS = ("onnx", "torchscript")
# The image shape a bare module (not a checkpoint, which records its own) is exported for.
EXPORTED_SHAPE = MNIST_SHAPE
# The ONNX metadata_props keys identikit writes: the class names (a JSON list of texts, one
# per output), and for a converted model the file and conventions it was converted from.
CLASS_NAMES_KEY = "identikit.class_names"
SOURCE_KEY = "identikit.source"


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

    ``model`` is a checkpoint file, exported for the image shape it records (and with the
    class names it records, in an ONNX file's metadata), or a module, exported for
    :data:`EXPORTED_SHAPE`. The exported model takes inputs as ``preprocessing`` says (range,
    mean and std, layout) and returns its kind of outputs. ``flatten`` makes the input a batch
    of flattened images (N, C x H x W); ``fixed_batch`` fixes the batch size to 1 (ONNX).
    """
    check_format(fmt)
    preprocessing = preprocessing or Preprocessing()
    shape, class_names = EXPORTED_SHAPE, None
    if not isinstance(model, nn.Module):
        model, meta = load_checkpoint(model)
        shape = meta["input_shape"]
        recorded = meta.get("class_names")
        if class_names is None and isinstance(recorded, list | tuple):
            class_names = [str(name) for name in recorded]
    preprocessing.check(shape)
    wrapped = _Exported(model.eval().cpu(), preprocessing, shape=shape, flatten=flatten)
    dims = (shape.size,) if flatten else preprocessing.model_dims(shape)
    example = torch.rand(1 if fixed_batch else 2, *dims)
    _write(wrapped, example, out, fmt=fmt, fixed_batch=fixed_batch, metadata=_names(class_names))


@dataclass(frozen=True)
class Source:
    """A model of any convention, to be exported in identikit's own.

    ``graph`` is the model as ONNX; it maps the model's inputs (as ``conventions`` describe
    them: range, mean and std, layout; flattened to rows where ``flat``) to its outputs
    (``outputs``: logits, probabilities or log-probabilities); ``shape`` is its images' shape;
    ``fixed_batch`` says the model runs a batch of 1 only (a graph written so). ``name`` and
    ``sha256`` say which file it was read from.
    """

    graph: bytes
    conventions: Preprocessing
    outputs: str
    shape: ImageShape
    name: str
    flat: bool = False
    fixed_batch: bool = False
    sha256: str | None = None


def torchscript_graph(module: nn.Module, dims: tuple[int, ...]) -> bytes:
    """A TorchScript ``module`` (inputs of ``dims``, batch first) as ONNX, batch norm kept.

    The exporter traces a loaded TorchScript module only as the outermost module (one inside
    a wrapper is "not part of the active trace"), so the module is exported alone and the
    conventions are then folded into its graph (:func:`export_converted`).
    """
    return onnx_bytes(module.eval(), torch.rand(2, *dims), keep_batch_norm=True)


def export_converted(
    source: Source, out: str | os.PathLike[str], *, class_names: Sequence[str] | None = None
) -> None:
    """Write ``source`` as ONNX in identikit's convention (N x C x H x W pixels in [0, 1] ->
    logits), atomically, with its class names and where it came from in the file's metadata.

    The conventions are folded into the source's own graph, which is kept as it is, node for
    node (its batch norms, its batch size): a few nodes before it map identikit's pixels to
    the model's inputs (:meth:`Preprocessing.to_model`'s arithmetic), and one after it turns
    probabilities into logits (log p: softmax(log p) = p). Nothing is re-traced, so the file
    computes exactly what the source computes on the same inputs.
    """
    if source.outputs not in OUTPUT_KINDS:
        raise IdentikitError(f"--outputs must be one of {', '.join(OUTPUT_KINDS)}")
    source.conventions.check(source.shape)
    onnx = _onnx_package("converting a model to identikit's convention")
    model = onnx.load_model_from_string(source.graph)
    _fold_conventions(onnx, model, source)
    metadata = {
        **_names(class_names),
        SOURCE_KEY: json.dumps(
            {
                "file": source.name,
                "sha256": source.sha256,
                "conventions": source.conventions.describe(),
                "outputs": source.outputs,
            }
        ),
    }
    atomic_write_bytes(out, with_metadata(model.SerializeToString(), metadata))


def _fold_conventions(onnx: Any, model: Any, source: Source) -> None:
    """Put identikit's pixels before ``model``'s graph and logits after it, in place."""
    graph, helper = model.graph, onnx.helper
    constants = {t.name for t in graph.initializer}
    image = next(i for i in graph.input if i.name not in constants)  # what the model reads
    prefix = "identikit_"
    # The source's own names may be "input" and "logits", which the file's ends take.
    model_input, model_output = f"{prefix}model_input", f"{prefix}model_output"
    _rename(graph, {image.name: model_input, graph.output[0].name: model_output})
    nodes, tensors = _input_nodes(onnx, source, model_input, prefix)
    batch: int | str = 1 if source.fixed_batch else "batch"
    pixels = helper.make_tensor_value_info(
        "input", onnx.TensorProto.FLOAT, [batch, *source.shape.dims]
    )
    after = []
    if source.outputs == "probabilities":
        tiny = float(torch.finfo(torch.float32).tiny)
        tensors.append(helper.make_tensor(f"{prefix}tiny", onnx.TensorProto.FLOAT, [], [tiny]))
        after = [
            helper.make_node("Max", [model_output, f"{prefix}tiny"], [f"{prefix}floored"]),
            helper.make_node("Log", [f"{prefix}floored"], ["logits"]),
        ]
    else:
        after = [helper.make_node("Identity", [model_output], ["logits"])]
    logits = helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [batch, None])
    kept_inputs = [i for i in graph.input if i.name != model_input]
    del graph.input[:]
    graph.input.extend([pixels, *kept_inputs])
    del graph.output[:]
    graph.output.extend([logits])
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *body, *after])
    graph.initializer.extend(tensors)


def _rename(graph: Any, names: dict[str, str]) -> None:
    """Rename values of ``graph`` (its nodes' inputs and outputs, its inputs, outputs and
    value infos) as ``names`` says, in place."""
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for info in (*graph.input, *graph.output, *graph.value_info):
        info.name = names.get(info.name, info.name)


def _input_nodes(
    onnx: Any, source: Source, target: str, prefix: str
) -> tuple[list[Any], list[Any]]:
    """The nodes (and their constants) from identikit's ``input`` to the source model's input
    ``target``: scaled to its range, less its mean, over its std (per channel as (1, C, 1,
    1)), laid out channels last, flattened, as its conventions say."""
    helper, conventions = onnx.helper, source.conventions
    channels = source.shape.channels
    low, high = INPUT_RANGES[conventions.input_range]

    def column(values: Values) -> list[float]:
        items = values if isinstance(values, tuple) else (values,) * channels
        return [float(v) for v in items]

    # (x * (high - low) + low - mean) / std, per channel, node for node as
    # Preprocessing.to_model computes it: the exported model's outputs and input gradients
    # are then bit for bit those of the source model loaded with its flags (x * scale + shift
    # rounds differently, and a gradient search amplified that 5e-6 into 1e-2 apart).
    mean, std = column(conventions.mean), column(conventions.std)
    dims = [1, channels, 1, 1]
    tensors = [
        helper.make_tensor(f"{prefix}range", onnx.TensorProto.FLOAT, [], [high - low]),
        helper.make_tensor(f"{prefix}low", onnx.TensorProto.FLOAT, [], [low]),
        helper.make_tensor(f"{prefix}mean", onnx.TensorProto.FLOAT, dims, mean),
        helper.make_tensor(f"{prefix}std", onnx.TensorProto.FLOAT, dims, std),
    ]
    nodes = [
        helper.make_node("Mul", ["input", f"{prefix}range"], [f"{prefix}ranged"]),
        helper.make_node("Add", [f"{prefix}ranged", f"{prefix}low"], [f"{prefix}lifted"]),
        helper.make_node("Sub", [f"{prefix}lifted", f"{prefix}mean"], [f"{prefix}centred"]),
        helper.make_node("Div", [f"{prefix}centred", f"{prefix}std"], [f"{prefix}normal"]),
    ]
    current = f"{prefix}normal"
    if conventions.channels_last:
        nodes.append(helper.make_node("Transpose", [current], [f"{prefix}nhwc"], perm=[0, 2, 3, 1]))
        current = f"{prefix}nhwc"
    if source.flat:
        tensors.append(helper.make_tensor(f"{prefix}rows", onnx.TensorProto.INT64, [2], [0, -1]))
        nodes.append(helper.make_node("Reshape", [current, f"{prefix}rows"], [f"{prefix}flat"]))
        current = f"{prefix}flat"
    nodes.append(helper.make_node("Identity", [current], [target]))
    return nodes, tensors


def _onnx_package(what: str) -> Any:
    try:
        import onnx
    except ImportError:
        raise IdentikitError(
            f"{what} needs the onnx package: pip install 'identikit[onnx]'"
        ) from None
    return onnx


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IdentikitError(f"--format must be one of {', '.join(FORMATS)}")


def _names(class_names: Sequence[str] | None) -> dict[str, str]:
    """The metadata entry of ``class_names``: none where the classes have no names but their
    numbers (which is what a model without names shows anyway)."""
    if not class_names:
        return {}
    names = [str(name) for name in class_names]
    if names == [str(c) for c in range(len(names))]:
        return {}
    return {CLASS_NAMES_KEY: json.dumps(names)}


def _write(
    module: nn.Module,
    example: torch.Tensor,
    out: str | os.PathLike[str],
    *,
    fmt: str,
    fixed_batch: bool,
    metadata: dict[str, str],
) -> None:
    """``module`` traced on ``example`` and written as ``fmt`` to ``out``, atomically (the
    metadata goes into an ONNX file; TorchScript has no place for it that tools read)."""
    if fmt == "onnx":
        data = onnx_bytes(module, example, fixed_batch=fixed_batch, keep_batch_norm=True)
        atomic_write_bytes(out, with_metadata(data, metadata) if metadata else data)
        return
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's chatter
        torch.jit.save(torch.jit.trace(module, example), buffer)  # type: ignore[no-untyped-call]
    atomic_write_bytes(out, buffer.getvalue())


def name_classes(path: str | os.PathLike[str], class_names: Sequence[str]) -> None:
    """Record ``class_names`` in the metadata of the ONNX file ``path`` (rewritten
    atomically), in place of any it records."""
    data = Path(path).read_bytes()
    atomic_write_bytes(path, with_metadata(data, _names(class_names)))


def with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    """The ONNX model ``data`` with ``metadata`` set in its ``metadata_props`` (entries of
    the same keys replaced)."""
    onnx = _onnx_package("writing class names into an ONNX file")
    model = onnx.load_model_from_string(data)
    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    serialised: bytes = model.SerializeToString()
    return serialised


def onnx_bytes(
    module: nn.Module,
    example: torch.Tensor,
    *,
    fixed_batch: bool = False,
    keep_batch_norm: bool = False,
) -> bytes:
    """``module`` as ONNX (input ``input``, output ``output``), traced on ``example``, with a
    dynamic batch size unless ``fixed_batch``.

    The TorchScript-based exporter takes plain and TorchScript modules alike. In its default
    (eval) mode it folds each BatchNormalization into the convolution before it, which is what
    scoring wants; ``keep_batch_norm`` exports in "preserve" mode instead, which for a module
    in eval mode gives the same inference graph with its BatchNormalization nodes kept (the
    fold is the only difference: constant folding still runs).
    """
    buffer = io.BytesIO()
    # Without keep_batch_norm the exporter's default, as every ONNX file identikit made before.
    mode = {"training": torch.onnx.TrainingMode.PRESERVE} if keep_batch_norm else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding and its future
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,  # type: ignore[arg-type]
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=None if fixed_batch else {"input": {0: "batch"}, "output": {0: "batch"}},
            **mode,  # type: ignore[arg-type]
            dynamo=False,
        )
    return buffer.getvalue()
