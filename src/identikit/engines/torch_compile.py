"""``torch.compile`` of the channels_last module (TorchInductor; Ansel et al. 2024, "PyTorch 2:
Faster Machine Learning Through Dynamic Python Bytecode Transformation and Graph Compilation").

The graph is specialised to one batch size (``dynamic=False``), so short chunks are padded to
it; its first call compiles it, which every new process pays again.
"""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

from identikit.engines.scorers import BackendUnavailable
from identikit.engines.target import Target
from identikit.engines.torch_engines import Forward, TorchRecipe, torch_engine, torch_why_not


def _compiled(model: nn.Module) -> Forward:
    if isinstance(model, torch.jit.ScriptModule):
        raise BackendUnavailable("torch.compile does not take TorchScript modules")
    return torch.compile(model, dynamic=False)


def _why_not(target: Target, precision: str) -> str | None:
    """The PyTorch engines' reasons, and on CPUs a C compiler: Inductor compiles C++ there."""
    why = torch_why_not(target, precision)
    if why is None and target.device.type == "cpu" and not shutil.which(os.environ.get("CC", "cc")):
        return "torch.compile needs a C compiler on CPUs"
    return why


COMPILE = TorchRecipe("compile", torch.channels_last, prepare=_compiled, fixed_batch=True)
ENGINE = torch_engine(COMPILE, why_not=_why_not, compiles=True)
