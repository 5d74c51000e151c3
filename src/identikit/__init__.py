"""identikit: what does a trained image classifier believe a digit looks like?"""

from __future__ import annotations

from identikit.base.errors import IdentikitError
from identikit.data.datasets import load_dataset, load_mnist
from identikit.models.checkpoint import load_checkpoint, load_model
from identikit.training.trainer import evaluate, train

__all__ = [
    "IdentikitError",
    "evaluate",
    "load_checkpoint",
    "load_dataset",
    "load_mnist",
    "load_model",
    "train",
]
__version__ = "0.1.0"
