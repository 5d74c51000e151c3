"""PyTorch eager: the module as it is, in the default (NCHW) memory layout."""

from __future__ import annotations

import torch

from identikit.engines.torch_engines import TorchRecipe, torch_engine

EAGER = TorchRecipe("eager", torch.contiguous_format)
ENGINE = torch_engine(EAGER)
