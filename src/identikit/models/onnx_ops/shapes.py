"""Operators that move values around: reshapes, transposes, slices, concatenation, shape
arithmetic (Shape, Gather, Constant, Cast), and those that pass their input on (Identity, and
Dropout, which is the identity in inference).

Shape arithmetic runs on int64 tensors, as in ONNX; a Reshape reads its target shape as
numbers, so a shape that depends on the batch (Shape -> Gather -> Concat -> Reshape, what the
exporter writes for a dynamic batch) is computed anew for each batch.
"""

from __future__ import annotations

import math

import torch

from identikit.models.onnx_ops.registry import (
    Inputs,
    Node,
    Outputs,
    from_input_or_attr,
    ints,
    operator,
    optional,
    required,
)

# ONNX TensorProto data types -> torch's (the ones classifiers' graphs cast to).
_DTYPES = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
}


@operator("Identity", "Dropout")
def identity(node: Node, inputs: Inputs) -> Outputs:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.refuse("its mask output is not supported")
    return required(node, inputs, 0)


@operator("Constant")
def constant(node: Node, inputs: Inputs) -> Outputs:
    """The value of attribute ``value`` (a tensor, read when the graph is loaded) or of one of
    ``value_float(s)`` and ``value_int(s)``."""
    if "value" in node.attrs:
        value: torch.Tensor = node.attrs["value"]
        return value
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32)):
        if key in node.attrs:
            return torch.tensor(node.attrs[key], dtype=dtype)
    for key in ("value_int", "value_ints"):
        if key in node.attrs:
            return torch.tensor(node.attrs[key], dtype=torch.int64)
    raise node.refuse("no value attribute it supports (value, value_float(s), value_int(s))")


@operator("ConstantOfShape")
def constant_of_shape(node: Node, inputs: Inputs) -> Outputs:
    """A tensor of the given shape filled with attribute ``value`` (one element; 0.0 by
    default): what the exporter writes in the arithmetic of Pad's pads."""
    dims = ints(required(node, inputs, 0)) or []
    value: torch.Tensor | None = node.attr("value")
    if value is None:
        return torch.zeros(dims, dtype=torch.float32)
    return value.reshape(-1)[:1].expand(dims).clone() if dims else value.reshape(())


@operator("Cast")
def cast(node: Node, inputs: Inputs) -> Outputs:
    """A cast; a float input cast to another float type keeps its own, so that the graph runs
    at the precision it is run at (float64 for a gradient check)."""
    x = required(node, inputs, 0)
    to = int(node.attr("to", 1))
    if to not in _DTYPES:
        raise node.refuse(f"casting to ONNX type {to} is not supported")
    dtype = _DTYPES[to]
    if dtype.is_floating_point and x.is_floating_point():
        return x
    if dtype.is_floating_point:
        return x.to(torch.get_default_dtype())
    return x.to(dtype)


@operator("Shape")
def shape(node: Node, inputs: Inputs) -> Outputs:
    dims = list(required(node, inputs, 0).shape)
    start, end = node.attr("start", 0), node.attr("end")
    return torch.tensor(dims[start:end], dtype=torch.int64)


@operator("Gather")
def gather(node: Node, inputs: Inputs) -> Outputs:
    """x taken at ``indices`` along ``axis``: numpy's take, negative indices from the end."""
    x, indices = required(node, inputs, 0), required(node, inputs, 1)
    axis = int(node.attr("axis", 0)) % x.dim()
    size = x.shape[axis]
    flat = torch.where(indices < 0, indices + size, indices).reshape(-1).long()
    taken = x.index_select(axis, flat)
    return taken.reshape([*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]])


@operator("Flatten")
def flatten(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    axis = int(node.attr("axis", 1)) % (x.dim() + 1) if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@operator("Reshape")
def reshape(node: Node, inputs: Inputs) -> Outputs:
    """A 0 in the target shape copies the input's dimension (unless ``allowzero``), -1 is
    inferred."""
    x = required(node, inputs, 0)
    target = ints(required(node, inputs, 1)) or []
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 and i < x.dim() else d for i, d in enumerate(target)]
    return x.reshape(target)


@operator("Transpose")
def transpose(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    perm = node.attr("perm") or list(reversed(range(x.dim())))
    return x.permute(*[int(p) for p in perm])


@operator("Concat")
def concat(node: Node, inputs: Inputs) -> Outputs:
    parts = [t for t in inputs if t is not None]
    return torch.cat(parts, dim=int(node.attr("axis", 0)))


@operator("Squeeze")
def squeeze(node: Node, inputs: Inputs) -> Outputs:
    """Axes as an attribute before opset 13, as an input from it on; none: every axis of 1."""
    x = required(node, inputs, 0)
    axes = from_input_or_attr(node, inputs, 1, "axes")
    if axes is None:
        return x.squeeze()
    return x.squeeze(tuple(a % x.dim() for a in axes)) if axes else x


@operator("Unsqueeze")
def unsqueeze(node: Node, inputs: Inputs) -> Outputs:
    """Axes as an attribute before opset 13, as an input from it on; each counts in the
    output's dimensions."""
    x = required(node, inputs, 0)
    axes = from_input_or_attr(node, inputs, 1, "axes") or []
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return x


@operator("Slice")
def slice_(node: Node, inputs: Inputs) -> Outputs:
    """Starts, ends and axes as attributes before opset 10, as inputs (with steps) from it on;
    out-of-range bounds are clamped as Python's slices clamp them (the ONNX rule)."""
    x = required(node, inputs, 0)
    starts = from_input_or_attr(node, inputs, 1, "starts") or []
    ends = from_input_or_attr(node, inputs, 2, "ends") or []
    axes = from_input_or_attr(node, inputs, 3, "axes") or list(range(len(starts)))
    steps = ints(optional(inputs, 4)) or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        begin, stop, stride = slice(start, end, step).indices(x.shape[axis])
        if stride > 0:
            x = x.narrow(axis, begin, max(stop - begin, 0))[
                (slice(None),) * axis + (slice(None, None, stride),)
            ]
        else:
            picks = torch.arange(begin, stop, stride, device=x.device)
            x = x.index_select(axis, picks)
    return x
