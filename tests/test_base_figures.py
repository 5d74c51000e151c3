"""The figures: identikit grids, animations whose frames count the confidence, transfer matrices,
curves, histograms, and labels of near-certain confidences."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from identikit.base.figures import (
    animation_gif,
    certainty_histogram,
    confidence_label,
    convergence_curves,
    identikit_grid,
    transfer_matrix,
)


def test_animation_gif_frames() -> None:
    trajectories = [
        np.linspace(0, 1, 5)[:, None, None] * np.ones((5, 28, 28)),
        np.zeros((3, 28, 28)),
    ]
    gif = Image.open(io.BytesIO(animation_gif(trajectories, ["0", "1"], frames=10, scale=2)))
    # One frame per moment of the longest run (n_frames is missing from PIL's stubs).
    assert gif.format == "GIF" and gif.n_frames == 5  # type: ignore[attr-defined]
    assert gif.size == (2 * (56 + 4) + 4, 56 + 18)


def test_gif_frames_show_the_confidence_of_their_iteration() -> None:
    trajectories = [np.zeros((3, 28, 28)), np.ones((2, 28, 28))]
    gif = Image.open(
        io.BytesIO(
            animation_gif(trajectories, ["0", "1"], confidences=[[0.1, 0.5, 0.99], [0.2, 0.3]])
        )
    )
    strips = []
    for frame in range(gif.n_frames):  # type: ignore[attr-defined]
        gif.seek(frame)
        strips.append(np.asarray(gif.convert("L"))[28 * 4 + 17 :, : 28 * 4])
    assert all((strip < 128).any() for strip in strips)  # a number under the image
    assert not np.array_equal(strips[0], strips[-1])  # that changes as the run goes


def test_transfer_matrix_and_curves_are_pngs() -> None:
    matrix = [[3, 1], [0, 4]]
    assert Image.open(io.BytesIO(transfer_matrix(matrix, judge="mlp"))).format == "PNG"
    png = convergence_curves(
        {"a": ([10, 20], [0.5, 1.0]), "b": ([], [])}, threshold=0.99, max_queries=100
    )
    assert Image.open(io.BytesIO(png)).size[0] > 300


def test_figures_are_pngs() -> None:
    images = np.random.default_rng(0).random((6, 28, 28)).astype(np.float32)
    grid = identikit_grid(images, [0, 0, 0, 1, 1, 1], [0.995, 0.5, 0.99, 0.1, 0.2, 0.999])
    wide = identikit_grid(np.concatenate([images, images]), [0] * 6 + [1] * 6, [0.5] * 12)
    assert grid[:8] == b"\x89PNG\r\n\x1a\n"
    width = Image.open(io.BytesIO(grid)).size[0]
    assert Image.open(io.BytesIO(wide)).size[0] > width  # 6 columns > 3
    # Rows are digits: white images for 0 above black ones for 1 (labels red, below target).
    shades = np.stack([np.full((28, 28), float(i % 2 == 0)) for i in range(6)])
    pixels = np.asarray(
        Image.open(io.BytesIO(identikit_grid(shades, [0, 1, 0, 1, 0, 1], [0.5] * 6)))
    )
    black = np.asarray((pixels[..., :3] < 10).all(axis=2))
    half = pixels.shape[0] // 2
    assert black[half:].sum() >= 3 * 28 * 28 and black[:half].sum() == 0
    histogram = certainty_histogram({"a": [0.1, 0.9], "b": np.array([0.5])})
    assert histogram[:8] == b"\x89PNG\r\n\x1a\n"


def test_confidence_labels_tell_near_certain_runs_apart() -> None:
    assert confidence_label(0.5) == "0.500"
    assert confidence_label(0.99991) == "1-9.0e-5"
    assert confidence_label(0.99997) == "1-3.0e-5"
    assert confidence_label(1 - 2.5e-9) == "1-2.5e-9"
    assert confidence_label(1.0) == "1"
