"""What the PyTorch engines share: each runs its own copy of the module, in a memory layout of
its own, optionally wrapped (``torch.compile``); a recipe says which, and :func:`torch_engine`
makes the registry's :class:`~identikit.engines.registry.Engine` of it.

In ``bf16`` a PyTorch engine holds the weights in bfloat16 and takes bfloat16 inputs; outputs
always come back as float32.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from identikit.engines.precision import INT8_ON_CPU_ONLY, INT8_ON_ONNX_ONLY
from identikit.engines.registry import Build, Engine
from identikit.engines.scorers import BackendUnavailable, Scorer
from identikit.engines.target import Target

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TorchRecipe:
    """How a PyTorch engine runs its copy of the module.

    Attributes:
        name: the engine's name.
        layout: the memory layout of its 4-D weights and inputs.
        prepare: turns the copy, on its device, dtype and layout, into what is called (None:
            the copy itself); raises ``BackendUnavailable`` for a module it cannot take.
        fixed_batch: what ``prepare`` makes is specialised to ``chunk_size`` inputs, so shorter
            chunks are padded to it (see :class:`~identikit.engines.scorers.Scorer`).
    """

    name: str
    layout: torch.memory_format
    prepare: Callable[[nn.Module], Forward] | None = None
    fixed_batch: bool = False


def torch_scorer(
    module: nn.Module,
    recipe: TorchRecipe,
    *,
    precision: str,
    device: torch.device,
    chunk_size: int,
    threads: int,
) -> Scorer:
    """The PyTorch engine ``recipe`` for ``module``, on its own copy of the weights."""
    try:
        model = copy.deepcopy(module)
    except Exception as exc:  # a user's module may refuse to be copied
        raise BackendUnavailable(f"the model cannot be copied ({exc})") from None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    layout = recipe.layout
    with contextlib.suppress(RuntimeError, AttributeError):  # modules without 4-D weights
        model.to(memory_format=layout)  # type: ignore[call-overload]
    forward: Forward = model if recipe.prepare is None else recipe.prepare(model)

    @torch.inference_mode()
    def run(inputs: torch.Tensor) -> torch.Tensor:
        x = inputs.to(dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=layout)
        return forward(x).float()

    return Scorer(recipe.name, precision, chunk_size, threads, run, fixed_batch=recipe.fixed_batch)


def torch_why_not(target: Target, precision: str) -> str | None:
    """Why no PyTorch engine can score ``target`` at ``precision``; None when they can."""
    if precision == "int8":
        # Off the CPU no engine scores in int8: every one says so in the same words.
        return INT8_ON_ONNX_ONLY if target.device.type == "cpu" else INT8_ON_CPU_ONLY
    if target.module is None:
        return "the model is an ONNX file"
    return None


def torch_engine(
    recipe: TorchRecipe,
    *,
    why_not: Callable[[Target, str], str | None] = torch_why_not,
    compiles: bool = False,
) -> Engine:
    """The registry's engine for ``recipe``: it runs where ``why_not`` finds no reason not to
    (by default, wherever the model is a PyTorch module and the precision fp32 or bf16)."""

    def build(spec: Build) -> Scorer:
        module = spec.target.module
        assert module is not None  # why_not refuses ONNX files
        return torch_scorer(
            module,
            recipe,
            precision=spec.precision,
            device=spec.target.device,
            chunk_size=spec.chunk_size,
            threads=spec.threads,
        )

    return Engine(recipe.name, why_not, build, compiles=compiles)
