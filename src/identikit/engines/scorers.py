"""Scorers: one model run by one engine, at one precision, one chunk of inputs at a time.

The engines themselves are registered in :mod:`identikit.engines.registry`, one module each
(``eager``, ``channels_last``, ``torch_compile``, ``onnx_runtime``); each builds a
:class:`Scorer`, whose outputs always come back as float32.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from identikit.base.errors import IdentikitError


class BackendUnavailable(IdentikitError):
    """An engine that cannot run this model here; the message says why."""


@dataclass
class Scorer:
    """A model under one engine: model inputs (N, ...) float32 -> outputs (N, classes) float32.

    ``threads`` is the thread count the engine was measured with; ``fixed_batch`` engines
    (compiled graphs) are padded to ``chunk_size``. ``one_core`` makes a copy of the scorer
    that computes on the calling thread alone, for searches that run several groups of runs
    side by side, one per core (see :meth:`identikit.classifier.Classifier.lanes`); None
    where the engine has none.
    """

    backend: str
    precision: str
    chunk_size: int
    threads: int
    run: Callable[[torch.Tensor], torch.Tensor]
    fixed_batch: bool = False
    one_core: Callable[[], Scorer] | None = None

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        n = inputs.shape[0]
        if self.fixed_batch and 0 < n < self.chunk_size:
            # A compiled graph specialised to chunk_size images would recompile for any other
            # size; zeros fill the chunk and their outputs are dropped.
            padding = inputs.new_zeros((self.chunk_size - n, *inputs.shape[1:]))
            return self.run(torch.cat([inputs, padding]))[:n]
        return self.run(inputs)


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
