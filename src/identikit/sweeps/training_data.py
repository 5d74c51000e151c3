"""What data-driven priors learn from, read from the training data by the layer that knows it.

A strategy's priors never read a file: the manifold prior is given the principal subspace of
the training images (:class:`~identikit.strategies.priors.Subspace`). The sweep's caller says
which dataset a model learnt from and builds that subspace here, only where the strategy asks
for one (:meth:`~identikit.strategies.registry.StrategySpec.needs`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from identikit.data.datasets import default_root
from identikit.data.images import load_images
from identikit.models.info import ModelInfo
from identikit.strategies.priors import PriorInputs, PriorNeeds, Subspace

# The dataset priors learn from where the model does not say what it was trained on.
DEFAULT_DATASET = "mnist"


def training_dataset(info: ModelInfo) -> str:
    """The dataset a model's priors learn from: the one its checkpoint records it was trained
    on, else MNIST (ONNX and TorchScript files, and checkpoints that record none)."""
    return info.trained_on or DEFAULT_DATASET


def prior_inputs(
    needs: PriorNeeds,
    dataset: str = DEFAULT_DATASET,
    root: str | os.PathLike[str] | None = None,
) -> PriorInputs:
    """What ``needs`` asks for, from the training images of ``dataset`` (any
    :func:`~identikit.data.images.load_images` spec; read only if asked)."""
    if not needs.subspace_components:
        return PriorInputs()
    folder = Path(root) if root is not None else default_root()
    return PriorInputs(subspace=principal_subspace(dataset, folder, needs.subspace_components))


@functools.lru_cache(maxsize=4)
def principal_subspace(dataset: str, root: Path, components: int) -> Subspace:
    """The principal subspace of the training images of ``dataset`` (kept: a sweep, its replay
    and a comparison ask for the same one)."""
    return Subspace.of_images(load_images(dataset, root).train_images, components)
