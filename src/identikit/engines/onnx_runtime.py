"""ONNX Runtime: the user's ONNX file, or the module exported once and cached
(:mod:`identikit.engines.onnx_files`); in int8, a quantized copy of either
(:mod:`identikit.engines.quantize`). It runs on the CPU, with threads of its own."""

from __future__ import annotations

from identikit.engines.onnx_files import onnx_engine
from identikit.engines.precision import INT8_ON_CPU_ONLY
from identikit.engines.registry import Engine
from identikit.engines.target import Target


def _why_not(target: Target, precision: str) -> str | None:
    """ONNX Runtime runs here on the CPU, in fp32, or in int8; an ONNX file on any device."""
    if precision == "int8":
        return None if target.device.type == "cpu" else INT8_ON_CPU_ONLY
    if target.module is None:
        return None
    if target.device.type != "cpu":
        return "ONNX Runtime runs on the CPU here"
    if precision != "fp32":
        return "ONNX Runtime scores in fp32"
    return None


ENGINE = Engine("onnx", _why_not, onnx_engine, pytorch=False)
