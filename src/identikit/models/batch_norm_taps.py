"""Batch-norm layers found in a model, and their inputs' statistics read during a forward pass:
what the term of :mod:`identikit.models.feature_statistics` (DeepInversion, Yin et al. 2020)
matches to the statistics each layer stored in training.

Three ways into a model's layers, one interface (:class:`TappedModel`, made by :func:`tap`):

- a PyTorch module (identikit's checkpoints, any module given through the API): forward
  pre-hooks on its batch-norm layers, registered for the one call and removed after it;
- an ONNX graph run by identikit's interpreter (:class:`~identikit.models.onnx_graph.OnnxGraph`):
  an observer handed to that one run sees each BatchNormalization node's input, and its mean
  and variance are the graph's constants;
- TorchScript: PyTorch refuses hooks on a ScriptModule ("register_forward_pre_hook is not
  supported on ScriptModules", torch 2.13, on the loaded traced ResNet-20), so the module is
  exported to ONNX in memory with ``TrainingMode.PRESERVE``, which keeps each batch norm as a
  BatchNormalization node instead of folding it into the convolution before it, and that graph
  is tapped. On ResNet-20 the interpreter's input gradients agreed with TorchScript's own to
  5e-6 (the Classifier runs TorchScript channels last, the interpreter NCHW).

Layers of any rank are kept (BatchNorm1d's (N, C) or (N, C, L) inputs too): the statistics are
over every dimension but the channel (dimension 1), as batch norm's own. A layer with nothing
stored to match (``track_running_stats=False``, or a node whose mean or variance is computed
rather than constant) is left out. No layers at all: :attr:`TappedModel.layers` is empty and
:func:`layers_line` says so.

``groups`` numbers the rows of a batch 0..G-1 (runs of one class, say): each group's statistics
are read on their own, (G, C) per layer.
"""

from __future__ import annotations

import io
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from identikit.base.errors import IdentikitError, first_line
from identikit.models.channel_statistics import channel_moments
from identikit.models.onnx_graph import OnnxGraph, load_graph
from identikit.models.onnx_model import OnnxModel
from identikit.models.onnx_ops import Node


@dataclass(frozen=True)
class BatchNormLayer:
    """One batch-norm layer found in a model: its name (the module's path, ``layer1.0.bn1``,
    or the ONNX node's) and its number of channels."""

    name: str
    channels: int


@dataclass(frozen=True)
class LayerStatistics:
    """What one batch-norm layer's input had over a batch, beside what the layer stored.

    ``layer`` indexes :attr:`TappedModel.layers`; ``mean`` and ``var`` are (groups, channels),
    with autograd back to the images; ``running_mean`` and ``running_var`` (channels,).
    """

    layer: int
    mean: torch.Tensor
    var: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


Tapped = tuple[torch.Tensor, list[LayerStatistics]]


class TappedModel(ABC):
    """A model's forward pass that also gives the statistics of each batch-norm layer's input.

    ``tapped(inputs, groups)`` -> (the model's outputs, one :class:`LayerStatistics` per call of
    a layer, in the order the layers ran). ``inputs`` are model inputs (after preprocessing);
    ``groups`` (N,) numbers each row's group 0..G-1, every group used (None: one group).
    """

    layers: tuple[BatchNormLayer, ...]

    @abstractmethod
    def __call__(self, inputs: torch.Tensor, groups: torch.Tensor | None = None) -> Tapped: ...


# --- PyTorch modules: forward pre-hooks -----------------------------------------------------


class HookedModule(TappedModel):
    """A PyTorch module tapped with forward pre-hooks on its batch-norm layers (in eval mode:
    one in training mode would normalise with the batch's statistics and overwrite its stored
    ones, so it is refused). The hooks exist only during a call, and record only the calling
    thread's pass, so the module's plain forward is untouched."""

    def __init__(self, module: nn.Module, name: str = "the model") -> None:
        self.module = module
        self.name = name
        found = [
            (path, layer)
            for path, layer in module.named_modules()
            if isinstance(layer, _BatchNorm)
            and layer.running_mean is not None
            and layer.running_var is not None
        ]
        self._norms = [layer for _, layer in found]
        self.layers = tuple(
            BatchNormLayer(path or type(layer).__name__, layer.num_features)
            for path, layer in found
        )

    def __call__(self, inputs: torch.Tensor, groups: torch.Tensor | None = None) -> Tapped:
        for layer, norm in zip(self.layers, self._norms, strict=True):
            if norm.training:
                raise IdentikitError(
                    f"{self.name}: batch-norm layer {layer.name} is in training mode; put the "
                    "model in eval mode (model.eval()) before matching its statistics"
                )
        observed: list[LayerStatistics] = []
        record = _recorder(observed, groups, threading.get_ident())
        handles = [
            norm.register_forward_pre_hook(_pre_hook(record, index, norm))
            for index, norm in enumerate(self._norms)
        ]
        try:
            outputs = self.module(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return outputs, observed


Record = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


def _recorder(observed: list[LayerStatistics], groups: torch.Tensor | None, thread: int) -> Record:
    """``record(layer, x, running_mean, running_var)``: appends the statistics of ``x`` to
    ``observed`` when called on ``thread`` (a pass on another thread is not this call's)."""

    def record(layer: int, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        if threading.get_ident() == thread:
            batch_mean, batch_var = channel_moments(x, groups)
            observed.append(LayerStatistics(layer, batch_mean, batch_var, mean, var))

    return record


def _pre_hook(
    record: Record, index: int, norm: _BatchNorm
) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
    def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        assert norm.running_mean is not None and norm.running_var is not None
        record(index, args[0], norm.running_mean, norm.running_var)

    return hook


# --- ONNX graphs (and TorchScript through them): the interpreter's observer ---------------


class ObservedGraph(TappedModel):
    """An ONNX graph run by identikit's interpreter, its BatchNormalization nodes observed
    (inputs: x, scale, bias, mean, var). ``flat``: the graph takes flattened images (N, values).
    """

    def __init__(self, graph: OnnxGraph, *, flat: bool = False) -> None:
        self.graph = graph
        self.flat = flat
        self._index: dict[str, int] = {}
        layers: list[BatchNormLayer] = []
        for node in graph.steps:
            if node.op_type != "BatchNormalization" or len(node.inputs) < 5:
                continue
            mean, var = graph.constant(node.inputs[3]), graph.constant(node.inputs[4])
            if mean is not None and var is not None:
                self._index[node.name] = len(layers)
                layers.append(BatchNormLayer(_layer_name(node.name), mean.numel()))
        self.layers = tuple(layers)

    def __call__(self, inputs: torch.Tensor, groups: torch.Tensor | None = None) -> Tapped:
        if self.graph.fixed_batch == 1 and inputs.shape[0] != 1:
            # Mapped over the batch image by image, each layer would see one image at a time.
            raise IdentikitError(
                f"{self.graph.name}: the graph is fixed to a batch of 1, and batch-norm "
                "statistics need the whole batch in one pass; export it with a dynamic batch"
            )
        observed: list[LayerStatistics] = []
        record = _recorder(observed, groups, threading.get_ident())

        def observe(node: Node, args: list[torch.Tensor | None]) -> None:
            index = self._index.get(node.name)
            if index is not None:
                x, mean, var = args[0], args[3], args[4]
                assert x is not None and mean is not None and var is not None
                record(index, x, mean, var)

        if self.flat:
            inputs = inputs.reshape(len(inputs), -1)
        return self.graph.run(inputs, observe), observed


def _layer_name(node: str) -> str:
    """``/layer1/0/bn1/BatchNormalization`` (torch.onnx.export's node names) -> the module's
    path ``layer1.0.bn1``; any other node name as it is."""
    suffix = "/BatchNormalization"
    if node.startswith("/") and node.endswith(suffix) and len(node) > len(suffix) + 1:
        return node[1 : -len(suffix)].replace("/", ".")
    return node


def script_graph(module: torch.jit.ScriptModule, example: torch.Tensor, name: str) -> OnnxGraph:
    """A TorchScript module (in eval mode) as an ONNX graph for the interpreter, exported in
    memory with its batch norms kept (``TrainingMode.PRESERVE``) and a dynamic batch.
    ``example`` is a model input (a batch of 2 or more, so that no size is fixed to 1)."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object is accepted too
                dynamo=False,
                training=torch.onnx.TrainingMode.PRESERVE,
                input_names=["inputs"],
                output_names=["outputs"],
                dynamic_axes={"inputs": {0: "batch"}, "outputs": {0: "batch"}},
            )
    except Exception as exc:  # the exporter raises many types, from TorchScript and ONNX
        raise IdentikitError(
            f"{name}: its batch-norm layers could not be read (exporting the TorchScript "
            f"module to ONNX failed: {first_line(exc)}); draw it without the statistics term"
        ) from None
    return load_graph(buffer.getvalue(), name).to(example.device)


def tap(model: object, example: torch.Tensor | None = None, name: str = "the model") -> TappedModel:
    """``model``'s forward with its batch-norm statistics: a PyTorch module (hooks), a
    TorchScript module (exported to ONNX with ``example``, a batch of model inputs), an
    :class:`OnnxModel` or an :class:`OnnxGraph` (observed). A one-line error for anything
    else, or for TorchScript without ``example``."""
    if isinstance(model, OnnxModel):
        return ObservedGraph(model.graph(), flat=model.flat)
    if isinstance(model, OnnxGraph):
        return ObservedGraph(model)
    if isinstance(model, torch.jit.ScriptModule):
        if example is None:
            raise IdentikitError(f"{name}: a TorchScript model is tapped from an example input")
        return ObservedGraph(script_graph(model, example, name))
    if isinstance(model, nn.Module):
        return HookedModule(model, name)
    raise IdentikitError(
        f"{name}: batch-norm layers are read from a PyTorch, TorchScript or ONNX model only"
    )


def layers_line(layers: Sequence[BatchNormLayer]) -> str:
    """What a command prints: ``statistics of 19 batch-norm layers`` or ``no batch-norm layers
    found``."""
    if not layers:
        return "no batch-norm layers found"
    return f"statistics of {len(layers)} batch-norm layer{'s' if len(layers) != 1 else ''}"
