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

from identikit.data.datasets import default_root, load_dataset
from identikit.strategies.priors import PriorInputs, PriorNeeds, Subspace

# The dataset priors learn from unless the caller knows another: the models identikit trains.
DEFAULT_DATASET = "mnist"


def prior_inputs(
    needs: PriorNeeds,
    dataset: str = DEFAULT_DATASET,
    root: str | os.PathLike[str] | None = None,
) -> PriorInputs:
    """What ``needs`` asks for, from the training split of ``dataset`` (read only if asked)."""
    if not needs.subspace_components:
        return PriorInputs()
    folder = Path(root) if root is not None else default_root()
    return PriorInputs(subspace=principal_subspace(dataset, folder, needs.subspace_components))


@functools.lru_cache(maxsize=4)
def principal_subspace(dataset: str, root: Path, components: int) -> Subspace:
    """The principal subspace of the training images of ``dataset`` (kept: a sweep, its replay
    and a comparison ask for the same one)."""
    images, _ = load_dataset(dataset, "train", root)
    return Subspace.of_images(images, components)
