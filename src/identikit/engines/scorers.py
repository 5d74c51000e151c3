"""Scorers: one model run by one engine, at one precision, one chunk of inputs at a time.

Engines (``BACKENDS``):

- ``eager``: the PyTorch module as it is;
- ``channels_last``: the module with NHWC weights and inputs, which oneDNN's CPU convolutions
  run about 1.5x faster for the tutorial CNN;
- ``compile``: ``torch.compile`` of the channels_last module (TorchInductor; Ansel et al. 2024,
  "PyTorch 2"), specialised to one batch size, so short chunks are padded to it;
- ``onnx``: ONNX Runtime (the user's ONNX file, or the module exported once and cached).

In ``bf16`` a PyTorch engine holds the weights in bfloat16 and takes bfloat16 inputs; in
``int8`` ONNX Runtime runs a quantized copy of the model (:mod:`identikit.engines.quantize`).
Outputs always come back as float32.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.models.onnx_model import OnnxModel

BACKENDS = ("eager", "channels_last", "compile", "onnx")
TORCH_BACKENDS = ("eager", "channels_last", "compile")


class BackendUnavailable(IdentikitError):
    """An engine that cannot run this model here; the message says why."""


@dataclass
class Scorer:
    """A model under one engine: model inputs (N, ...) float32 -> outputs (N, classes) float32.

    ``threads`` is the thread count the engine was measured with; ``fixed_batch`` engines
    (compiled graphs) are padded to ``chunk_size``.
    """

    backend: str
    precision: str
    chunk_size: int
    threads: int
    run: Callable[[torch.Tensor], torch.Tensor]
    fixed_batch: bool = False

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        n = inputs.shape[0]
        if self.fixed_batch and 0 < n < self.chunk_size:
            # A compiled graph specialised to chunk_size images would recompile for any other
            # size; zeros fill the chunk and their outputs are dropped.
            padding = inputs.new_zeros((self.chunk_size - n, *inputs.shape[1:]))
            return self.run(torch.cat([inputs, padding]))[:n]
        return self.run(inputs)

    def describe(self) -> str:
        return (
            f"{self.backend} ({self.precision}, chunks of {self.chunk_size}, "
            f"{self.threads} thread{'s' if self.threads != 1 else ''})"
        )


def torch_scorer(
    module: nn.Module,
    backend: str,
    *,
    precision: str,
    device: torch.device,
    chunk_size: int,
    threads: int,
) -> Scorer:
    """A PyTorch engine for ``module``, on its own copy of the weights."""
    if backend not in TORCH_BACKENDS:
        raise ValueError(backend)
    try:
        model = copy.deepcopy(module)
    except Exception as exc:  # a user's module may refuse to be copied
        raise BackendUnavailable(f"the model cannot be copied ({exc})") from None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    layout = torch.contiguous_format if backend == "eager" else torch.channels_last
    with contextlib.suppress(RuntimeError, AttributeError):  # modules without 4-D weights
        model.to(memory_format=layout)  # type: ignore[call-overload]
    forward: Callable[[torch.Tensor], torch.Tensor] = model
    if backend == "compile":
        if isinstance(module, torch.jit.ScriptModule):
            raise BackendUnavailable("torch.compile does not take TorchScript modules")
        forward = torch.compile(model, dynamic=False)

    @torch.inference_mode()
    def run(inputs: torch.Tensor) -> torch.Tensor:
        x = inputs.to(dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=layout)
        return forward(x).float()

    return Scorer(backend, precision, chunk_size, threads, run, fixed_batch=backend == "compile")


def onnx_scorer(path: str, *, chunk_size: int, threads: int, precision: str = "fp32") -> Scorer:
    """ONNX Runtime on the model file ``path`` (float32, or an int8 version of the model)."""

    try:
        model = OnnxModel(path, threads=threads)
    except IdentikitError as exc:
        raise BackendUnavailable(str(exc)) from None
    return Scorer("onnx", precision, chunk_size, threads, model)


def module_digest(module: nn.Module, *, weights: bool) -> str:
    """A hash of a module's structure, and of its weights too when ``weights``.

    Speed depends on the structure only, so tuning is cached by structure; an export holds the
    weights, so exports are cached by both.
    """
    digest = hashlib.sha256(type(module).__qualname__.encode())
    code = getattr(module, "code", None)  # TorchScript: the forward's own code
    digest.update((code if isinstance(code, str) else repr(module)).encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        if weights:
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()
