"""The evolution strategy on any image: mutations touch each channel's values apart."""

from __future__ import annotations

import torch

from identikit.strategies import make_strategy
from identikit.strategies.base import Group


def group(shape: tuple[int, int, int]) -> Group:
    return Group(
        images=torch.full((2, *shape), 0.5),
        scores=torch.zeros(2),
        targets=torch.zeros(2, dtype=torch.long),
        iterations=torch.zeros(2, dtype=torch.long),
        generators=[torch.Generator().manual_seed(s) for s in (0, 1)],
        memory={"sigma": torch.full((2,), 0.1)},
    )


def test_mutations_touch_every_channel_apart() -> None:
    evolution = make_strategy("evolution", candidates=40, density=0.3)
    changed = evolution.propose(group((3, 32, 32))) != 0.5
    assert changed.shape == (2, 40, 3, 32, 32)
    assert abs(changed.float().mean(dim=(0, 1, 3, 4)) - 0.3).max() < 0.01
    assert not torch.equal(changed[:, :, 0], changed[:, :, 2])
    assert evolution.propose(group((1, 8, 8))).shape == (2, 40, 1, 8, 8)
