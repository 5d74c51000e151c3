"""Convolutions, pooling, batch normalisation (inference form) and padding, in 1, 2 or 3
spatial dimensions.

ONNX writes ``pads`` as [x1_begin, x2_begin, ..., x1_end, x2_end]; a symmetric padding is
handed to torch's layer itself (so that ``ceil_mode`` treats it as torch, whose models these
usually are, and ONNX Runtime do), an asymmetric one (or ``auto_pad`` SAME_UPPER/SAME_LOWER,
Keras's "same") is applied with :func:`torch.nn.functional.pad` first.
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

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _spatial(node: Node, x: torch.Tensor) -> int:
    """The number of spatial dimensions of ``x`` (N, C, ...); 1 to 3."""
    dims = x.dim() - 2
    if dims not in _CONV:
        raise node.refuse(f"input of rank {x.dim()}; expected 3 to 5")
    return dims


def _torch_pads(pads: list[int]) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2] -> torch's F.pad order [b_last, e_last, ..., b1, e1]."""
    half = len(pads) // 2
    out: list[int] = []
    for axis in reversed(range(half)):
        out += [pads[axis], pads[axis + half]]
    return out


def _pads(node: Node, x: torch.Tensor, kernel: list[int], strides: list[int]) -> list[int]:
    """The node's explicit pads, or those ``auto_pad`` implies for the input ``x``."""
    dims = len(kernel)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return [int(p) for p in node.attr("pads", [0] * 2 * dims)]
    if auto == "VALID":
        return [0] * 2 * dims
    dilations = node.attr("dilations", [1] * dims)
    begins, ends = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - small if auto == "SAME_UPPER" else small)
    return begins + ends


def _symmetric(pads: list[int]) -> list[int] | None:
    """The per-axis padding where begins equal ends; None otherwise."""
    half = len(pads) // 2
    return pads[:half] if pads[:half] == pads[half:] else None


@operator("Conv")
def conv(node: Node, inputs: Inputs) -> Outputs:
    x, weight, bias = required(node, inputs, 0), required(node, inputs, 1), optional(inputs, 2)
    dims = _spatial(node, x)
    kernel = list(node.attr("kernel_shape", weight.shape[2:]))
    strides = list(node.attr("strides", [1] * dims))
    pads = _pads(node, x, kernel, strides)
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _torch_pads(pads)), [0] * dims
    return _CONV[dims](
        x,
        weight,
        bias,
        stride=strides,
        padding=padding,
        dilation=list(node.attr("dilations", [1] * dims)),
        groups=int(node.attr("group", 1)),
    )


@operator("ConvTranspose")
def conv_transpose(node: Node, inputs: Inputs) -> Outputs:
    """The transposed convolution with explicit ``pads`` and ``output_padding`` (what
    torch.onnx.export writes); ``output_shape`` and ``auto_pad`` are refused in one line."""
    x, weight, bias = required(node, inputs, 0), required(node, inputs, 1), optional(inputs, 2)
    dims = _spatial(node, x)
    if node.attr("output_shape") is not None or node.attr("auto_pad", "NOTSET") not in (
        "NOTSET",
        "",
    ):
        raise node.refuse("output_shape and auto_pad are not supported; give explicit pads")
    pads = [int(p) for p in node.attr("pads", [0] * 2 * dims)]
    padding = _symmetric(pads)
    out = _CONV_T[dims](
        x,
        weight,
        bias,
        stride=list(node.attr("strides", [1] * dims)),
        padding=padding or [0] * dims,
        output_padding=list(node.attr("output_padding", [0] * dims)),
        groups=int(node.attr("group", 1)),
        dilation=list(node.attr("dilations", [1] * dims)),
    )
    if padding is None:  # asymmetric pads crop the full output: negative padding
        out = F.pad(out, [-p for p in _torch_pads(pads)])
    return out


def _pool_geometry(node: Node, x: torch.Tensor) -> tuple[int, list[int], list[int], list[int]]:
    """A pooling node's spatial dimensions, kernel, strides and pads."""
    dims = _spatial(node, x)
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    if len(kernel) != dims:
        raise node.refuse(f"kernel_shape {kernel} does not fit an input of rank {x.dim()}")
    strides = [int(s) for s in node.attr("strides", [1] * dims)]
    return dims, kernel, strides, _pads(node, x, kernel, strides)


def _torch_padding(pads: list[int], kernel: list[int]) -> list[int] | None:
    """The padding torch's pooling takes itself (symmetric, at most half the kernel); None
    where the pads must be applied first."""
    padding = _symmetric(pads)
    if padding is None or any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        return None
    return padding


@operator("MaxPool")
def max_pool(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.refuse("its Indices output is not supported")
    dims, kernel, strides, pads = _pool_geometry(node, x)
    padding = _torch_padding(pads, kernel)
    if padding is None:
        x, padding = F.pad(x, _torch_pads(pads), value=-math.inf), [0] * dims
    return _MAX[dims](
        x,
        kernel,
        strides,
        padding,
        dilation=list(node.attr("dilations", [1] * dims)),
        ceil_mode=bool(node.attr("ceil_mode", 0)),
    )


@operator("AveragePool")
def average_pool(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    dims, kernel, strides, pads = _pool_geometry(node, x)
    if any(d != 1 for d in node.attr("dilations", [1] * dims)):
        raise node.refuse("dilations other than 1 are not supported")
    ceil = bool(node.attr("ceil_mode", 0))
    include = bool(node.attr("count_include_pad", 0))
    padding = _torch_padding(pads, kernel)
    if padding is not None:
        return _AVG[dims](x, kernel, strides, padding, ceil, include)
    # Pads torch's pooling cannot take: pad the input with zeros, and (padding not counted)
    # divide by the pooled share of real pixels, a mask padded the same way.
    zero = [0] * dims
    padded = F.pad(x, _torch_pads(pads))
    means = _AVG[dims](padded, kernel, strides, zero, ceil, True)
    if include:
        return means
    mask = F.pad(torch.ones_like(x[:1, :1]), _torch_pads(pads))
    return means / _AVG[dims](mask, kernel, strides, zero, ceil, True)


@operator("GlobalAveragePool")
def global_average_pool(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    return x.mean(dim=list(range(2, x.dim())), keepdim=True)


@operator("GlobalMaxPool")
def global_max_pool(node: Node, inputs: Inputs) -> Outputs:
    x = required(node, inputs, 0)
    return torch.amax(x, dim=list(range(2, x.dim())), keepdim=True)


@operator("BatchNormalization")
def batch_normalization(node: Node, inputs: Inputs) -> Outputs:
    """Inference form: the running mean and variance; training mode is refused."""
    if node.attr("training_mode", 0) or (len(node.outputs) > 1 and any(node.outputs[1:])):
        raise node.refuse("training mode is not supported (export the model in eval mode)")
    x = required(node, inputs, 0)
    scale, bias = required(node, inputs, 1), required(node, inputs, 2)
    mean, var = required(node, inputs, 3), required(node, inputs, 4)
    eps = float(node.attr("epsilon", 1e-5))
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


@operator("Pad")
def pad(node: Node, inputs: Inputs) -> Outputs:
    """Pads as attribute ``pads`` (and ``value``) before opset 11, as inputs from it on, with
    the axes they apply to as input 3 from opset 18; negative pads crop."""
    x = required(node, inputs, 0)
    pads = from_input_or_attr(node, inputs, 1, "pads") or []
    axes = from_input_or_attr(node, inputs, 3, "axes")
    if axes is not None:  # pads for the given axes only: zeros for the others
        full = [0] * 2 * x.dim()
        for i, axis in enumerate(a % x.dim() for a in axes):
            full[axis], full[axis + x.dim()] = pads[i], pads[i + len(axes)]
        pads = full
    mode = str(node.attr("mode", "constant"))
    if mode not in _PAD_MODES:
        raise node.refuse(f"mode {mode!r} is not supported")
    value = optional(inputs, 2) if node.opset >= 11 else None
    fill = float(value.reshape(-1)[0]) if value is not None and value.numel() else 0.0
    if node.opset < 11:
        fill = float(node.attr("value", 0.0))
    order = _torch_pads(pads)
    while len(order) > 2 and order[-2:] == [0, 0]:  # torch pads only the last dimensions
        order = order[:-2]  # in the non-constant modes
    if mode == "constant":
        return F.pad(x, order, value=fill)
    return F.pad(x, order, mode=_PAD_MODES[mode])
