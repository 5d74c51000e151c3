"""The figures: identikit grids, animations whose frames count the confidence, transfer matrices,
curves, histograms, and labels of near-certain confidences."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from identikit.base.figures import (
    animation_gif,
    certainty_histogram,
    class_label,
    confidence_label,
    convergence_curves,
    identikit_grid,
    identikit_png,
    nearest_pairs,
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


def colour_images(count: int, height: int, width: int) -> np.ndarray:
    """Images (count, 3, H, W) of pure red: a colour no grey picture has."""
    images = np.zeros((count, 3, height, width), np.float32)
    images[:, 0] = 1.0
    return images


def reds(picture: Image.Image) -> int:
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    return int(((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum())


def test_colour_grids_are_drawn_in_colour_and_small_images_enlarged() -> None:
    for digits in ([0, 0, 1, 1], [0, 1, 2, 3]):  # a mosaic, and a single row
        grid = Image.open(io.BytesIO(identikit_grid(colour_images(4, 8, 8), digits, [0.5] * 4)))
        assert reds(grid) >= 4 * 24 * 24  # every image red, at least 3 screen pixels a pixel
    grey = Image.open(io.BytesIO(identikit_grid(np.ones((4, 1, 8, 8)), [0, 0, 1, 1], [0.99] * 4)))
    assert reds(grey) == 0  # one channel first is grey, as (H, W) is


def test_large_images_keep_their_labels_clear_of_the_images() -> None:
    images = np.zeros((4, 3, 96, 96), np.float32)  # black images: labels above them, not on them
    grid = np.asarray(
        Image.open(io.BytesIO(identikit_grid(images, [0, 0, 1, 1], [0.5] * 4))).convert("RGB")
    )
    red: np.ndarray = (grid[..., 0] > 150) & (grid[..., 1] < 100)
    black = np.all(grid < 30, axis=2)
    assert red.any()  # the labels (below target: red)
    rows = set(np.flatnonzero(red.any(axis=1)).tolist())
    assert not rows & set(np.flatnonzero(black.any(axis=1)).tolist())  # none crosses an image


def test_colour_animation_png_and_pairs() -> None:
    trajectories = [colour_images(3, 8, 8), colour_images(2, 8, 8) * 0.5]
    gif = Image.open(io.BytesIO(animation_gif(trajectories, ["0", "1"])))
    # 8 x 8 images at 14 screen pixels a pixel (112 // 8), red in every frame.
    assert gif.size == (2 * (112 + 4) + 4, 112 + 18)
    for frame in range(gif.n_frames):  # type: ignore[attr-defined]
        gif.seek(frame)
        assert reds(gif) >= 112 * 112
    png = Image.open(io.BytesIO(identikit_png(colour_images(1, 8, 8)[0])))
    assert png.mode == "RGB" and png.size == (224, 224) and reds(png) == 224 * 224
    wide = Image.open(io.BytesIO(identikit_png(colour_images(1, 32, 64)[0], scale=2)))
    assert wide.size == (128, 64)  # width x height, the scale asked for
    grey = Image.open(io.BytesIO(identikit_png(np.full((28, 28), 0.5))))
    assert grey.mode == "L" and grey.size == (224, 224)  # MNIST's as ever: 8 x 8 a pixel
    pairs = Image.open(
        io.BytesIO(nearest_pairs(colour_images(2, 8, 8), [0, 1], colour_images(2, 8, 8), [0, 0]))
    )
    assert reds(pairs) >= 4 * 80 * 80  # identikits and real images alike in colour


def test_grids_name_their_classes_and_mnists_names_are_its_numbers() -> None:
    images = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    digits, confidences = [0, 0, 1, 1], [0.5, 0.995, 0.9, 0.999]
    plain = identikit_grid(images, digits, confidences, title="t")
    assert identikit_grid(images, digits, confidences, title="t", names=["0", "1"]) == plain
    named = identikit_grid(images, digits, confidences, title="t", names=["circle", "square"])
    assert named != plain
    assert class_label(1, ["circle", "square"]) == "square"
    assert class_label(7, ["circle", "square"]) == "7"  # a class without a name: its number
