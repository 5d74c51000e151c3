"""The operator registry of identikit's ONNX interpreter: one small function per ONNX operator.

An operator function takes the :class:`Node` it runs (its attributes and the opset it was
written for) and its inputs as torch tensors (None for an optional input left out), and returns
its outputs. Adding an operator is one function and one ``@operator("Name")`` line; the names
follow the ONNX operator specification (https://onnx.ai/onnx/operators/).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from identikit.base.errors import IdentikitError

Inputs = Sequence[torch.Tensor | None]
Outputs = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Node:
    """One node of an ONNX graph, as the operators read it: its operator, its name (for
    messages), its attributes as Python values, the opset of the default domain, and the names
    of its inputs and outputs (an empty name: an optional input left out)."""

    op_type: str
    name: str
    opset: int
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def refuse(self, why: str) -> IdentikitError:
        """A one-line error about this node: what the interpreter cannot do with it."""
        return IdentikitError(f"{self.op_type} node {self.name!r}: {why}")


Operator = Callable[[Node, Inputs], Outputs]

OPERATORS: dict[str, Operator] = {}
"""Every operator the interpreter runs, by ONNX name (the default domain only)."""


def operator(*names: str) -> Callable[[Operator], Operator]:
    """Register the decorated function as the operator(s) ``names``."""

    def register(function: Operator) -> Operator:
        for name in names:
            OPERATORS[name] = function
        return function

    return register


def required(node: Node, inputs: Inputs, index: int) -> torch.Tensor:
    """Input ``index``, which the operator needs; a one-line error where it is missing."""
    value = inputs[index] if index < len(inputs) else None
    if value is None:
        raise node.refuse(f"input {index} is missing")
    return value


def optional(inputs: Inputs, index: int) -> torch.Tensor | None:
    """Input ``index``, or None where the node leaves it out."""
    return inputs[index] if index < len(inputs) else None


def ints(value: torch.Tensor | None) -> list[int] | None:
    """A constant tensor of integers (axes, pads, a shape) as a list; None stays None."""
    return None if value is None else [int(v) for v in value.reshape(-1).tolist()]


def from_input_or_attr(node: Node, inputs: Inputs, index: int, key: str) -> list[int] | None:
    """A list of integers an operator takes as attribute ``key`` in early opsets and as input
    ``index`` in later ones (Squeeze's axes from opset 13, Slice's starts from 10, Pad's pads
    from 11, ...): the input where the node has it, else the attribute, else None."""
    given = optional(inputs, index)
    if given is not None:
        return ints(given)
    value = node.attr(key)
    return None if value is None else [int(v) for v in value]
