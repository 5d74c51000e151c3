"""Strokes on any image: one colour per stroke on colour images, grey strokes on grey ones."""

from __future__ import annotations

import torch

from identikit.strategies import make_strategy
from identikit.strategies.base import Group, run_generator


def group(shape: tuple[int, int, int], seeds: list[int], value: float = 0.5) -> Group:
    n = len(seeds)
    return Group(
        images=torch.full((n, *shape), value),
        scores=torch.zeros(n),
        targets=torch.zeros(n, dtype=torch.long),
        iterations=torch.zeros(n, dtype=torch.long),
        generators=[run_generator(s, 0, torch.device("cpu")) for s in seeds],
        memory={},
    )


def test_each_colour_stroke_has_one_colour() -> None:
    strokes = make_strategy("strokes", candidates=20, erase=0.0, width=2.0)
    # Ink on black, at most 1 x a colour of at most 1: nothing is clipped.
    offsets = strokes.propose(group((3, 32, 32), [4], value=0.0))[0]  # (K, C, H, W)
    assert offsets.shape == (20, 3, 32, 32)
    for stroke in offsets:
        ink = stroke[:, stroke.sum(0) > 0]  # (C, pixels)
        # Where the pen inks, the channels keep one ratio: the stroke's colour times its ink.
        colour = ink[:, ink.sum(0).argmax()]
        assert torch.allclose(ink * colour.sum(), colour.view(3, 1) * ink.sum(0), atol=1e-5)
    colours = offsets.flatten(2).sum(2)
    colours = colours / colours.sum(1, keepdim=True)
    assert colours.std(0).min() > 0.05  # strokes of many colours


def test_grey_strokes_draw_no_colour_and_depend_on_the_seed() -> None:
    strokes = make_strategy("strokes", candidates=6)
    first = strokes.propose(group((1, 12, 12), [1, 2]))
    assert first.shape == (2, 6, 1, 12, 12)
    assert torch.equal(first[1], strokes.propose(group((1, 12, 12), [9, 2]))[1])
    assert not torch.equal(first[0], first[1])
    # A grey stroke on a colour image's first channel is where that colour stroke draws.
    colour = strokes.propose(group((3, 12, 12), [1]))[0, :, 0]
    assert torch.equal((colour != 0.5), (first[0, :, 0] != 0.5) & (colour != 0.5))
