"""Which number formats the scoring can use on a device."""

from __future__ import annotations

from typing import Any

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


def ieee_fp32(device: torch.device) -> None:
    """On a CUDA device, compute float32 convolutions and matrix products in IEEE float32.

    PyTorch lets cuDNN's float32 convolutions run in TF32 by default (a 10-bit mantissa on
    Ampere and later GPUs), so "fp32" would not mean float32 and a GPU's scores would differ
    from a CPU's in the fourth digit. Process-wide, as PyTorch's settings are. Nothing changes
    on a CPU.
    """
    if device.type != "cuda":
        return
    conv, matmul = _fp32_settings()
    if hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        # PyTorch 2.9 and later: the new settings (mixing them with the old ones is refused).
        conv.fp32_precision = "ieee"
        matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def tf32_in_use(device: torch.device) -> bool:
    """Whether float32 convolutions or matrix products on ``device`` may run in TF32."""
    if device.type != "cuda":
        return False
    conv, matmul = _fp32_settings()
    if hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        # "none" on matmul defers to torch.set_float32_matmul_precision ("highest": IEEE).
        matmul_tf32 = matmul.fp32_precision == "tf32" or (
            matmul.fp32_precision == "none" and torch.get_float32_matmul_precision() != "highest"
        )
        return conv.fp32_precision == "tf32" or matmul_tf32
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def _fp32_settings() -> tuple[Any, Any]:
    """PyTorch's settings of float32 convolutions (cuDNN) and matrix products (CUDA)."""
    # torch.backends.cudnn.conv is set up at run time: its type stubs do not know it.
    return getattr(torch.backends.cudnn, "conv", None), torch.backends.cuda.matmul
