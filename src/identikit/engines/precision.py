"""Which number formats the scoring can use on a device."""

from __future__ import annotations

import torch

from identikit.base.errors import IdentikitError

PRECISIONS = ("fp32", "bf16", "int8")
# Why an engine cannot score in int8: only ONNX Runtime runs the quantized model, and only on
# the CPU.
INT8_ON_ONNX_ONLY = "int8 scoring runs on ONNX Runtime only"
INT8_ON_CPU_ONLY = "int8 scoring runs on ONNX Runtime, on the CPU"


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively.

    On a CPU that means AVX-512 BF16 or AMX instructions, which oneDNN's kernels use; without
    them PyTorch emulates bfloat16, more slowly than float32.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that is unknown or that ``device`` lacks the instructions for."""
    if precision not in PRECISIONS:
        raise IdentikitError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision}")
    if precision == "int8" and device.type != "cpu":
        raise IdentikitError("--precision int8 runs on ONNX Runtime on the CPU: use --device cpu")
    if precision == "bf16" and not bf16_supported(device):
        raise IdentikitError(
            f"--precision bf16: this {device.type.upper()} has no bfloat16 instructions "
            "(AVX-512 BF16 or AMX on CPUs; compute capability 8.0 on GPUs); use --precision fp32"
        )
