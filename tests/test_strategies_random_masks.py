"""Random masks: the documented distribution of candidates, and settings out of range."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.strategies import (
    make_strategy,
)
from identikit.strategies.base import (
    Group,
)


@pytest.mark.parametrize("bad", [{"candidates": 0}, {"mask_density": 0.0}, {"mask_amplitude": 1.5}])
def test_bad_strategy_settings(bad: dict[str, float]) -> None:
    with pytest.raises(IdentikitError):
        make_strategy("random-masks", **bad)


def test_masks_follow_the_documented_distribution() -> None:
    strategy = make_strategy("random-masks", candidates=2000, mask_density=0.1, mask_amplitude=0.5)
    gen = torch.Generator().manual_seed(0)
    base = torch.full((1, 1, 28, 28), 0.5)
    group = Group(
        images=base,
        scores=torch.zeros(1),
        targets=torch.zeros(1, dtype=torch.long),
        iterations=torch.zeros(1, dtype=torch.long),
        generators=[gen],
        memory={},
    )
    candidates = strategy.propose(group)
    offsets = candidates - 0.5
    changed = offsets != 0
    assert candidates.shape == (1, 2000, 1, 28, 28)
    assert abs(changed.float().mean().item() - 0.1) < 0.005
    assert offsets.abs().max().item() <= 0.5
    assert abs(offsets[changed].mean().item()) < 0.01  # symmetric around 0


def test_masks_perturb_every_channel_of_colour_images_apart() -> None:
    strategy = make_strategy("random-masks", candidates=50, mask_density=0.2)
    group = Group(
        images=torch.full((2, 3, 32, 32), 0.5),
        scores=torch.zeros(2),
        targets=torch.zeros(2, dtype=torch.long),
        iterations=torch.zeros(2, dtype=torch.long),
        generators=[torch.Generator().manual_seed(s) for s in (0, 1)],
        memory={},
    )
    changed = strategy.propose(group) != 0.5
    assert changed.shape == (2, 50, 3, 32, 32)
    # Each value is chosen on its own: every channel is perturbed, at other pixels.
    assert abs(changed.float().mean(dim=(0, 1, 3, 4)) - 0.2).max() < 0.01
    assert not torch.equal(changed[:, :, 0], changed[:, :, 1])
    tiny = dataclasses.replace(group, images=torch.full((2, 1, 8, 8), 0.5))
    assert strategy.propose(tiny).shape == (2, 50, 1, 8, 8)
