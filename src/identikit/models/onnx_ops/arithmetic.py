"""Element-wise arithmetic, activations, matrix products, reductions and softmax.

ONNX's broadcasting is numpy's, as torch's is; integer tensors (shape arithmetic) divide with
truncation, as ONNX Runtime does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from identikit.models.onnx_ops.registry import (
    Inputs,
    Node,
    Outputs,
    from_input_or_attr,
    operator,
    optional,
    required,
)


@operator("Add")
def add(node: Node, inputs: Inputs) -> Outputs:
    return required(node, inputs, 0) + required(node, inputs, 1)


@operator("Sub")
def sub(node: Node, inputs: Inputs) -> Outputs:
    return required(node, inputs, 0) - required(node, inputs, 1)


@operator("Mul")
def mul(node: Node, inputs: Inputs) -> Outputs:
    return required(node, inputs, 0) * required(node, inputs, 1)


@operator("Div")
def div(node: Node, inputs: Inputs) -> Outputs:
    a, b = required(node, inputs, 0), required(node, inputs, 1)
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


@operator("Neg")
def neg(node: Node, inputs: Inputs) -> Outputs:
    return -required(node, inputs, 0)


@operator("Sqrt")
def sqrt(node: Node, inputs: Inputs) -> Outputs:
    return torch.sqrt(required(node, inputs, 0))


@operator("Exp")
def exp(node: Node, inputs: Inputs) -> Outputs:
    return torch.exp(required(node, inputs, 0))


@operator("Pow")
def power(node: Node, inputs: Inputs) -> Outputs:
    return torch.pow(required(node, inputs, 0), required(node, inputs, 1))


@operator("Relu")
def relu(node: Node, inputs: Inputs) -> Outputs:
    return F.relu(required(node, inputs, 0))


@operator("LeakyRelu")
def leaky_relu(node: Node, inputs: Inputs) -> Outputs:
    return F.leaky_relu(required(node, inputs, 0), float(node.attr("alpha", 0.01)))


@operator("Sigmoid")
def sigmoid(node: Node, inputs: Inputs) -> Outputs:
    return torch.sigmoid(required(node, inputs, 0))


@operator("Tanh")
def tanh(node: Node, inputs: Inputs) -> Outputs:
    return torch.tanh(required(node, inputs, 0))


@operator("HardSigmoid")
def hard_sigmoid(node: Node, inputs: Inputs) -> Outputs:
    """max(0, min(1, alpha x + beta)), alpha 0.2 and beta 0.5 by default (not torch's 1/6)."""
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return torch.clamp(required(node, inputs, 0) * alpha + beta, 0.0, 1.0)


@operator("HardSwish")
def hard_swish(node: Node, inputs: Inputs) -> Outputs:
    return F.hardswish(required(node, inputs, 0))


@operator("Clip")
def clip(node: Node, inputs: Inputs) -> Outputs:
    """Bounds as attributes ``min`` and ``max`` before opset 11, as optional inputs from it on.

    Two fixed bounds (ReLU6, as torch.onnx exports ``F.relu6``) run as ``F.hardtanh``, which is
    what the PyTorch model ran: the same values, one kernel each way (a clamp between tensors
    took several passes backward), and the model's own gradients: none at exactly min or max.
    """
    x = required(node, inputs, 0)
    if node.opset < 11:
        low, high = node.attr("min"), node.attr("max")
        if low is None and high is None:
            return x
        return _clip_between(x, low, high)
    low_t, high_t = optional(inputs, 1), optional(inputs, 2)
    if low_t is None and high_t is None:
        return x
    if _fixed(low_t) and _fixed(high_t):
        assert low_t is not None and high_t is not None
        return _clip_between(x, low_t.item(), high_t.item())
    return torch.clamp(x, low_t, high_t)


def _fixed(bound: torch.Tensor | None) -> bool:
    """A bound that is one value and carries no gradient."""
    return bound is not None and bound.numel() == 1 and not bound.requires_grad


def _clip_between(x: torch.Tensor, low: float | None, high: float | None) -> torch.Tensor:
    """``x`` clipped to [low, high] (either may be None): hardtanh where both are given in
    order on a floating tensor, a clamp otherwise (ONNX's min > max gives max, as clamp)."""
    if x.is_floating_point() and low is not None and high is not None and low <= high:
        return F.hardtanh(x, low, high)
    return torch.clamp(x, low, high)


@operator("Gemm")
def gemm(node: Node, inputs: Inputs) -> Outputs:
    """alpha A' B' + beta C, A' and B' transposed where ``transA`` and ``transB`` say."""
    a, b, c = required(node, inputs, 0), required(node, inputs, 1), optional(inputs, 2)
    if node.attr("transA", 0):
        a = a.t()
    if node.attr("transB", 0):
        b = b.t()
    out = a @ b
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return out


@operator("MatMul")
def matmul(node: Node, inputs: Inputs) -> Outputs:
    return torch.matmul(required(node, inputs, 0), required(node, inputs, 1))


def _softmax_axis(node: Node, x: torch.Tensor) -> tuple[torch.Tensor, int, torch.Size]:
    """Before opset 13 Softmax works on the input flattened to 2-D at ``axis`` (default 1);
    from 13 on a single axis (default -1). The input as the operator sees it, the dimension to
    normalise, and the shape to restore."""
    if node.opset >= 13:
        return x, int(node.attr("axis", -1)), x.shape
    axis = int(node.attr("axis", 1)) % max(x.dim(), 1)
    return x.reshape(math.prod(x.shape[:axis]), -1), 1, x.shape


@operator("Softmax")
def softmax(node: Node, inputs: Inputs) -> Outputs:
    x, dim, shape = _softmax_axis(node, required(node, inputs, 0))
    return torch.softmax(x, dim).reshape(shape)


@operator("LogSoftmax")
def log_softmax(node: Node, inputs: Inputs) -> Outputs:
    x, dim, shape = _softmax_axis(node, required(node, inputs, 0))
    return torch.log_softmax(x, dim).reshape(shape)


def _reduce_axes(node: Node, inputs: Inputs, x: torch.Tensor) -> list[int] | None:
    """The axes a Reduce* node reduces (attribute ``axes`` before opset 18, or 13 for
    ReduceSum; an input from then on); None: every axis, unless ``noop_with_empty_axes``."""
    axes = from_input_or_attr(node, inputs, 1, "axes")
    if not axes:
        return [] if node.attr("noop_with_empty_axes", 0) else list(range(x.dim()))
    return [a % x.dim() for a in axes]


@operator("ReduceMean")
def reduce_mean(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    axes = _reduce_axes(node, inputs, x)
    return x.mean(dim=axes, keepdim=bool(node.attr("keepdims", 1))) if axes else x


@operator("ReduceSum")
def reduce_sum(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    axes = _reduce_axes(node, inputs, x)
    return x.sum(dim=axes, keepdim=bool(node.attr("keepdims", 1))) if axes else x
