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
from identikit.strategies.random_masks import most_selected


@pytest.mark.parametrize(
    "bad",
    [{"candidates": -1}, {"mask_density": -0.1}, {"mask_density": 1.5}, {"mask_amplitude": 1.5}],
)
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


def colour_group(runs: int, shape: tuple[int, int, int] = (3, 32, 32), value: float = 0.5) -> Group:
    return Group(
        images=torch.full((runs, *shape), value),
        scores=torch.zeros(runs),
        targets=torch.zeros(runs, dtype=torch.long),
        iterations=torch.zeros(runs, dtype=torch.long),
        generators=[torch.Generator().manual_seed(s) for s in range(runs)],
        memory={},
    )


def test_colour_masks_drawn_sparsely_follow_the_same_distribution_as_grey_ones() -> None:
    """Colour images draw the positions of the selected values (geometric gaps): each value is
    still selected on its own with the mask density, its offset uniform, the image clipped."""
    strategy = make_strategy("random-masks", candidates=2000, mask_density=0.05, mask_amplitude=0.5)
    values = 3 * 32 * 32
    assert 2 * most_selected(values, 0.05) < values  # the sparse draw is the one taken
    offsets = strategy.propose(colour_group(1)) - 0.5
    changed = offsets != 0
    counts = changed.flatten(2).sum(2).float()  # selected values per candidate
    # Binomial(3072, 0.05): mean 153.6, variance 145.9.
    assert abs(counts.mean().item() - 153.6) < 1.0
    assert abs(counts.var().item() - 145.9) < 15
    # Every position alike: no channel, row or column favoured, and the channels apart.
    share = changed.float().mean(dim=(0, 1))
    assert abs(share.mean(dim=(1, 2)) - 0.05).max() < 0.002
    assert abs(share.mean(dim=(0, 2)) - 0.05).max() < 0.005
    assert abs(share.mean(dim=(0, 1)) - 0.05).max() < 0.005
    both = (changed[:, :, 0] & changed[:, :, 1]).float().mean().item()
    assert abs(both - 0.05**2) < 0.0005
    # Offsets uniform on [-0.5, 0.5]: mean 0, variance 1/12.
    assert offsets.abs().max().item() <= 0.5
    assert abs(offsets[changed].mean().item()) < 0.01
    assert abs(offsets[changed].var().item() - 1 / 12) < 0.005


def test_sparse_colour_masks_clip_and_depend_on_the_run_alone() -> None:
    strategy = make_strategy("random-masks", candidates=100, mask_amplitude=1.0)
    group = colour_group(3, value=0.9)
    candidates = strategy.propose(group)
    assert candidates.min().item() >= 0.0 and candidates.max().item() <= 1.0
    assert (candidates == 1.0).any()  # offsets past 1 are clipped to it
    alone = strategy.propose(
        dataclasses.replace(
            group,
            images=group.images[1:2],
            generators=[torch.Generator().manual_seed(1)],
        )
    )
    assert torch.equal(alone[0], candidates[1])


def test_a_run_whose_masks_outgrow_the_room_made_draws_them_one_number_per_value() -> None:
    strategy = make_strategy("random-masks", candidates=20, mask_density=0.3)
    # Room for 2 selected values where about 58 are: every run falls back to the dense draw.
    candidates = strategy._sparse(colour_group(2, (3, 8, 8)), most=2)
    counts = (candidates != 0.5).flatten(2).sum(2).float()
    assert abs(counts.mean().item() - 0.3 * 192) < 8


def test_sparse_masks_do_not_depend_on_how_many_runs_a_block_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strategy = make_strategy("random-masks", candidates=30, mask_density=0.05)
    group = dataclasses.replace(colour_group(5, (3, 16, 16)), images=torch.rand(5, 3, 16, 16))
    most = most_selected(3 * 16 * 16, 0.05)
    # The whole group in one block (this size's default) ...
    together = strategy._sparse(dataclasses.replace(group, generators=generators(5)), most)
    # ... against one run per block; and both with room for 38 selected values, about as many
    # as a mask has, so that some runs overflow and draw theirs again.
    monkeypatch.setattr("identikit.strategies.random_masks.SPARSE_BLOCK_VALUES", 1)
    apart = strategy._sparse(dataclasses.replace(group, generators=generators(5)), most)
    assert torch.equal(together, apart)
    tight = strategy._sparse(dataclasses.replace(group, generators=generators(5)), 38)
    monkeypatch.setattr("identikit.strategies.random_masks.SPARSE_BLOCK_VALUES", 2**30)
    tight_together = strategy._sparse(dataclasses.replace(group, generators=generators(5)), 38)
    assert torch.equal(tight, tight_together)


def generators(runs: int) -> list[torch.Generator]:
    """Fresh generators of seeds 0 .. runs - 1."""
    return [torch.Generator().manual_seed(seed) for seed in range(runs)]
