"""Pen strokes: Bezier curves rendered as ink, differentiably, where their points say."""

from __future__ import annotations

import torch

from identikit.strategies.pen_strokes import PER_STROKE, PenStrokes, bezier, centres


def one_stroke(points: list[tuple[float, float]], pressure: float = 6.0) -> torch.Tensor:
    """The parameters of one image of one stroke through ``points`` (x, y)."""
    flat = [v for point in points for v in point]
    return torch.tensor([[*flat, pressure]])


def test_a_bezier_curve_starts_and_ends_at_its_end_points() -> None:
    control = torch.tensor([[[-0.5, 0.2], [0.0, 0.9], [0.3, -0.9], [0.7, 0.1]]])
    curve = bezier(control, 9)
    assert torch.allclose(curve[0, 0], control[0, 0])
    assert torch.allclose(curve[0, -1], control[0, 3])
    # A straight line's control points on the line keep the curve on it.
    line = bezier(torch.tensor([[[-1.0, 0.0], [-0.3, 0.0], [0.4, 0.0], [1.0, 0.0]]]), 7)
    assert torch.all(line[0, :, 1] == 0)


def test_pixel_centres_are_where_affine_grid_puts_them() -> None:
    grid = torch.nn.functional.affine_grid(
        torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]), [1, 1, 4, 2], align_corners=False
    )
    like = torch.zeros(1)
    assert torch.allclose(centres(2, like), grid[0, 0, :, 0])  # x along a row
    assert torch.allclose(centres(4, like), grid[0, :, 0, 1])  # y down a column


def test_a_horizontal_stroke_inks_its_row_and_nothing_far_from_it() -> None:
    pen = PenStrokes(strokes=1, radius=0.08)
    # Row 13 of 28 is centred at y = (2 * 13 + 1) / 28 - 1 = -0.0357.
    y = 27 / 28 - 1
    image = pen.render(one_stroke([(-0.6, y), (-0.2, y), (0.2, y), (0.6, y)]), (1, 28, 28))
    assert image.shape == (1, 1, 28, 28)
    assert float(image.min()) >= 0 and float(image.max()) <= 1
    assert float(image[0, 0, 13, 14]) > 0.9  # on the stroke
    assert float(image[0, 0, 3, 14]) < 0.01  # ten rows away
    assert float(image[0, 0, 13, 0]) < 0.01  # past its end
    # Little pressure, little ink.
    faint = pen.render(one_stroke([(-0.6, y), (-0.2, y), (0.2, y), (0.6, y)], -4.0), (1, 28, 28))
    assert float(faint.max()) < 0.05


def test_every_channel_gets_the_same_ink_and_gradients_reach_every_point() -> None:
    pen = PenStrokes(strokes=3)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    parameters = pen.start(generators, 0.5, torch.device("cpu")).requires_grad_(True)
    assert parameters.shape == (2, 3 * PER_STROKE)
    image = pen.render(parameters, (3, 16, 20))
    assert image.shape == (2, 3, 16, 20)
    assert torch.equal(image[:, 0], image[:, 2])
    (gradient,) = torch.autograd.grad(image.sum(), parameters)
    assert torch.isfinite(gradient).all()
    assert (gradient.abs() > 0).float().mean() > 0.9  # control points and pressures alike
    # Each image's strokes come from its own generator alone.
    again = pen.start([torch.Generator().manual_seed(2)], 0.5, torch.device("cpu"))
    assert torch.equal(again[0], parameters[1].detach())
