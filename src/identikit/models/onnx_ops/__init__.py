"""The operators of identikit's ONNX interpreter (:mod:`identikit.models.onnx_graph`): one
registry (:mod:`~identikit.models.onnx_ops.registry`), each operator a small function in
:mod:`~identikit.models.onnx_ops.arithmetic`, :mod:`~identikit.models.onnx_ops.layers` or
:mod:`~identikit.models.onnx_ops.shapes`. A new operator is one function there and one
``@operator("Name")`` line."""

from identikit.models.onnx_ops import arithmetic, layers, shapes  # noqa: F401  (registers them)
from identikit.models.onnx_ops.registry import OPERATORS, Node, operator

__all__ = ["OPERATORS", "Node", "operator"]
