"""An ONNX graph run in PyTorch, with autograd: what gives an ONNX model its gradients.

:func:`load_graph` reads the file with the ``onnx`` package (the graph only; nothing of it
runs), refuses in one line a graph with an operator the interpreter does not know (naming the
operator and its node) or a quantized one (int8 arithmetic has no gradients), and folds every
node whose inputs are all constants (Constant, shape arithmetic on weights) once. What is left
runs node by node on torch tensors, each operator a small function in the registry of
:mod:`identikit.models.onnx_ops`.

A graph whose batch is fixed at 1 (its Reshape to a constant [1, -1], say) is run on a batch
of N with :func:`torch.func.vmap`: each image goes through the graph as the batch of 1 it was
written for, and the batch's arithmetic is still done at once (and differentiated as one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from identikit.base.errors import IdentikitError, first_line
from identikit.models.onnx_ops import OPERATORS, Node

# Operators of quantized (int8) graphs (ONNX's and ONNX Runtime's com.microsoft ones): their
# arithmetic is on integers, which has no gradients.
QUANTIZED = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearConcat",
        "QLinearSoftmax",
        "QGemm",
        "ConvInteger",
        "MatMulInteger",
    }
)
_DEFAULT_DOMAINS = ("", "ai.onnx")
BLACK_BOX = "use a black-box strategy (ONNX Runtime scores the model as it is)"

Observer = Callable[[Node, list[torch.Tensor | None]], None]
"""``observe(node, inputs)``: called by :meth:`OnnxGraph.run` before each node runs, with the
node and the tensors it is about to get (autograd still flows through them): how a caller sees
inside the graph (the batch-norm statistics of :mod:`identikit.models.feature_statistics`)."""


class OnnxGraph(nn.Module):
    """An ONNX graph as a torch module: its first input -> its first output.

    The graph's constants are buffers (``.double()`` runs it in float64, as a gradient check
    wants); no parameters, since only the input's gradient is asked for.
    """

    def __init__(
        self,
        name: str,
        steps: list[Node],
        constants: dict[str, torch.Tensor],
        ends: tuple[str, str, int | None],
    ) -> None:
        super().__init__()
        self.name = name
        self.steps = steps
        self.input_name, self.output_name, self.fixed_batch = ends
        # Buffers need names without dots; ONNX names may have any characters.
        self.slots: dict[str, str] = {}
        for index, (key, value) in enumerate(constants.items()):
            self.slots[key] = f"constant_{index}"
            self.register_buffer(f"constant_{index}", value, persistent=False)
        self.eval()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The graph's first output for ``inputs`` (N, ...), any N: a graph fixed to a batch
        of 1 is mapped over the batch (see the module's docstring)."""
        if self.fixed_batch == 1 and inputs.shape[0] != 1:
            one = vmap(lambda image: self.run(image.unsqueeze(0)).squeeze(0))
            result: torch.Tensor = one(inputs)
            return result
        return self.run(inputs)

    def run(self, inputs: torch.Tensor, observe: Observer | None = None) -> torch.Tensor:
        """The graph, node by node, on ``inputs`` as they are; ``observe`` (if given) sees
        each node's inputs before it runs. The observer is an argument, not state of the
        graph, so that lanes on other threads running the same graph are never observed."""
        values: dict[str, torch.Tensor] = {self.input_name: inputs}
        for node in self.steps:
            args = [self._value(values, name) for name in node.inputs]
            if observe is not None:
                observe(node, args)
            try:
                out = OPERATORS[node.op_type](node, args)
            except IdentikitError as exc:
                raise IdentikitError(f"{self.name}: {exc}") from None
            except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                raise IdentikitError(
                    f"{self.name}: {node.op_type} node {node.name!r} failed in identikit's "
                    f"ONNX interpreter ({first_line(exc)}); {BLACK_BOX}"
                ) from None
            _store(values, node, out)
        return self._value(values, self.output_name)  # type: ignore[return-value]

    def constant(self, name: str) -> torch.Tensor | None:
        """The graph's constant (initializer, or folded node output) called ``name``, on the
        graph's device and in its precision; None where ``name`` is computed from the input."""
        slot = self.slots.get(name)
        found: torch.Tensor | None = None if slot is None else getattr(self, slot)
        return found

    def _value(self, values: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
        if not name:
            return None  # an optional input left out
        if name in values:
            return values[name]
        found: torch.Tensor = getattr(self, self.slots[name])
        return found


def _store(values: dict[str, torch.Tensor], node: Node, out: Any) -> None:
    """The outputs ``out`` of ``node`` under their names (an operator returns one tensor, or a
    tuple in the order of the node's outputs)."""
    outs = out if isinstance(out, tuple) else (out,)
    for name, value in zip(node.outputs, outs, strict=False):
        if name:
            values[name] = value


def load_graph(data: bytes, name: str) -> OnnxGraph:
    """The ONNX model in ``data`` (the file ``name``) as an :class:`OnnxGraph`; a one-line
    :class:`IdentikitError` for a quantized graph, an operator the interpreter does not know,
    or a file the ``onnx`` package cannot read."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise IdentikitError(
            "gradients of ONNX models need the onnx package: pip install 'identikit[onnx]'"
        ) from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's decode errors have no common type
        raise IdentikitError(f"{name}: not a readable ONNX model ({first_line(exc)})") from None
    graph = model.graph
    opset = max((i.version for i in model.opset_import if i.domain in _DEFAULT_DOMAINS), default=1)
    nodes = [_node(n, i, opset, numpy_helper) for i, n in enumerate(graph.node)]
    _check_operators(name, nodes, [n.domain for n in graph.node])
    constants = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer
    }
    inputs = [i for i in graph.input if i.name not in constants]
    if not inputs or not graph.output:
        raise IdentikitError(f"{name}: the ONNX graph has no input or no output")
    first = inputs[0]
    dims = first.type.tensor_type.shape.dim
    fixed = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    steps = _fold(name, nodes, constants)
    used = {n for step in steps for n in step.inputs} | {graph.output[0].name}
    kept = {k: v for k, v in constants.items() if k in used}
    module = OnnxGraph(name, steps, kept, (first.name, graph.output[0].name, fixed))
    # Convolution weights in channels_last, as identikit places every PyTorch module on a CPU
    # (classifier.engine_choice.place): PyTorch then runs the same convolution kernels for the
    # graph as for the module it was exported from, so a model's gradients through its ONNX
    # file are bit for bit those through its PyTorch or TorchScript file (NCHW weights differed
    # by 5e-6, which a gradient search amplified to 1e-2), and a step is about 1.2x faster.
    with contextlib.suppress(RuntimeError):
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def _node(proto: Any, index: int, opset: int, numpy_helper: Any) -> Node:
    """A NodeProto as a :class:`Node`, its attributes as Python values (tensors as torch
    tensors, strings as text)."""
    from onnx import helper

    attrs: dict[str, Any] = {}
    for attribute in proto.attribute:
        value = helper.get_attribute_value(attribute)
        if hasattr(value, "dims") and hasattr(value, "data_type"):  # a TensorProto
            value = torch.from_numpy(numpy_helper.to_array(value).copy())
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        attrs[attribute.name] = value
    return Node(
        op_type=proto.op_type,
        name=proto.name or f"{proto.op_type}_{index}",
        opset=opset,
        inputs=tuple(proto.input),
        outputs=tuple(proto.output),
        attrs=attrs,
    )


def _check_operators(name: str, nodes: list[Node], domains: list[str]) -> None:
    """Refuse a quantized graph, then any operator the interpreter does not run, in one line
    each, naming the first such node."""
    for node in nodes:
        if node.op_type in QUANTIZED:
            raise IdentikitError(
                f"{name} is a quantized (int8) ONNX graph ({node.op_type} node {node.name!r}), "
                f"whose integer arithmetic gives no gradients: {BLACK_BOX}"
            )
    for node, domain in zip(nodes, domains, strict=True):
        if domain not in _DEFAULT_DOMAINS or node.op_type not in OPERATORS:
            where = f"{domain}." if domain not in _DEFAULT_DOMAINS else ""
            raise IdentikitError(
                f"{name}: operator {where}{node.op_type} (node {node.name!r}) is not one "
                f"identikit's ONNX interpreter runs, so the model gives no gradients; {BLACK_BOX}"
            )


def _fold(name: str, nodes: list[Node], constants: dict[str, torch.Tensor]) -> list[Node]:
    """Evaluate, once, every node whose inputs are all constants (adding its outputs to
    ``constants``); the nodes left to run for each batch, in order."""
    steps = []
    for node in nodes:
        if all(not n or n in constants for n in node.inputs):
            args = [constants[n] if n else None for n in node.inputs]
            try:
                out = OPERATORS[node.op_type](node, args)
            except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                raise IdentikitError(
                    f"{name}: {node.op_type} node {node.name!r} failed in identikit's ONNX "
                    f"interpreter ({first_line(exc)}); {BLACK_BOX}"
                ) from None
            except IdentikitError as exc:
                raise IdentikitError(f"{name}: {exc}") from None
            _store(constants, node, out)
        else:
            steps.append(node)
    return steps
