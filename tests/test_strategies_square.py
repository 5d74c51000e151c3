"""Square search on any image: corners over the whole height and width, colour squares with a
sign per channel (as Square Attack's colour updates), and a side cut to the image."""

from __future__ import annotations

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.strategies import make_strategy
from identikit.strategies.base import Group, run_generator


def group(shape: tuple[int, int, int], iterations: list[int], value: float = 0.5) -> Group:
    n = len(iterations)
    return Group(
        images=torch.full((n, *shape), value),
        scores=torch.zeros(n),
        targets=torch.zeros(n, dtype=torch.long),
        iterations=torch.tensor(iterations),
        generators=[run_generator(run, i, torch.device("cpu")) for run, i in enumerate(iterations)],
        memory={},
    )


def test_squares_reach_every_row_and_column_of_a_wide_image() -> None:
    square = make_strategy("square", candidates=400, side=3)
    candidates = square.propose(group((3, 16, 40), [0, 0]))
    changed = (candidates != 0.5).any(dim=2)  # (G, K, H, W)
    assert changed.any(dim=(0, 1, 2)).all()  # every one of the 40 columns
    assert changed.any(dim=(0, 1, 3)).all()  # every one of the 16 rows
    # Each candidate is one 3 x 3 square.
    assert (changed.sum(dim=(2, 3)) == 9).all()


def test_squares_reach_every_column_of_a_tall_image() -> None:
    candidates = make_strategy("square", candidates=400, side=2).propose(group((1, 30, 6), [0]))
    changed = candidates != 0.5  # (G, K, C, H, W)
    assert changed.any(dim=(0, 1, 2, 4)).all()  # every one of the 30 rows
    assert changed.any(dim=(0, 1, 2, 3)).all()  # every one of the 6 columns


def test_each_channel_of_a_colour_square_has_its_own_sign() -> None:
    square = make_strategy("square", candidates=200, side=4, amplitude=0.25)
    candidates = square.propose(group((3, 12, 12), [0]))[0]  # (K, C, H, W)
    offsets = candidates - 0.5
    inside = (offsets != 0).any(dim=1, keepdim=True).expand_as(offsets)
    # Every channel of the square moves by +/- amplitude, each its own way.
    assert set(offsets[inside].tolist()) == {-0.25, 0.25}
    signs = offsets.flatten(2).sum(2).sign()  # (K, C): one sign per candidate and channel
    mixed = (signs != signs[:, :1]).any(dim=1)
    assert 0.5 < mixed.float().mean().item() < 1.0  # 3/4 of squares mix signs, by chance


def test_a_grey_square_moves_its_one_channel() -> None:
    square = make_strategy("square", candidates=50, side=5, amplitude=0.3)
    offsets = (square.propose(group((1, 28, 28), [0])) - 0.5)[0]
    moved = offsets[offsets != 0]
    assert len(moved) == 50 * 25
    assert torch.allclose(moved.abs(), torch.tensor(0.3))


def test_a_side_longer_than_the_image_is_cut_to_it() -> None:
    square = make_strategy("square", side=100)
    candidates = square.propose(group((3, 8, 5), [0], value=0.0))
    # The square is the whole 5 x 5 of the shorter side, somewhere in the 8 rows.
    changed = (candidates[0, 0] != 0).any(dim=0)
    assert changed.sum() == 25 and changed.any(dim=0).all()
    with pytest.raises(IdentikitError, match="side must be 0"):
        make_strategy("square", side=-1)


@pytest.mark.parametrize(
    ("dims", "side"), [((1, 28, 28), 14), ((3, 224, 224), 112), ((3, 16, 40), 8), ((1, 1, 9), 1)]
)
def test_the_default_side_is_half_the_shorter_side(dims: tuple[int, int, int], side: int) -> None:
    square = make_strategy("square")
    assert square.settings()["side"] == 0  # not yet for a shape
    shaped = square.for_shape(ImageShape(*dims))
    assert shaped.settings()["side"] == side
    assert shaped.for_shape(ImageShape(*dims)) == shaped
    # Unshaped, the side is found from the images themselves: the same first square.
    first = square.propose(group(dims, [0], value=0.0))
    assert torch.equal(first, shaped.propose(group(dims, [0], value=0.0)))
    # A side given is kept.
    assert make_strategy("square", side=5).for_shape(ImageShape(*dims)).settings()["side"] == 5
