"""``shapes``: a synthetic colour dataset made from a seed, so the colour path runs offline.

Ten classes, one shape each (:data:`CLASS_NAMES`): circle, square, triangle, cross (a plus
sign), ring, bar (horizontal or vertical), diamond, star (five points), crescent and frame (a
hollow square). Each 3 x 32 x 32 image draws one shape of random size (radius 6-12 pixels),
position (its centre at least a radius from every edge), tilt (within 15 degrees) and colour
over a textured background: a linear gradient between two colours in a random direction, plus
pixel noise. The background's colours are the shape's shifted by about half the range in every
channel, so the shape always stands out but neither colour tells the class. Made with NumPy
alone; the same seed gives the same images (given the NumPy version); training and test images
come from separate streams of the seed, so the test images do not depend on how many training
images are asked for. Classes are balanced (exactly, when the count is a multiple of ten).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from identikit.base.errors import DataError
from identikit.base.limits import SAMPLES
from identikit.base.shapes import ImageShape
from identikit.data.image_set import ImageSet

SHAPES_SHAPE = ImageShape(3, 32, 32)
TRAIN_IMAGES = 6_000
TEST_IMAGES = 1_000
NOISE = 0.06  # standard deviation of the pixel noise, pixels in [0, 1]

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Which points ``(u, v)`` (coordinates in units of the shape's radius, centred on it, ``v``
downwards) the shape covers."""


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # In polar form a five-pointed star's edge swings between an inner and an outer radius.
    angle = np.arctan2(v, u) + np.pi / 2
    inside: np.ndarray = np.hypot(u, v) <= 0.38 + 0.62 * np.abs(np.cos(2.5 * angle)) ** 3
    return inside


MASKS: dict[str, Mask] = {
    "circle": lambda u, v: u * u + v * v <= 1,
    "square": lambda u, v: np.maximum(abs(u), abs(v)) <= 0.8,
    "triangle": lambda u, v: (v <= 0.75) & (v >= 1.75 * abs(u) - 1),
    "cross": lambda u, v: ((abs(u) <= 0.3) | (abs(v) <= 0.3)) & (np.maximum(abs(u), abs(v)) <= 1),
    "ring": lambda u, v: (u * u + v * v <= 1) & (u * u + v * v >= 0.55**2),
    "bar": lambda u, v: (abs(u) <= 1) & (abs(v) <= 0.27),
    "diamond": lambda u, v: abs(u) + abs(v) <= 1,
    "star": _star,
    "crescent": lambda u, v: (u * u + v * v <= 1) & ((u - 0.5) ** 2 + v * v >= 0.75**2),
    "frame": lambda u, v: (np.maximum(abs(u), abs(v)) <= 0.9) & (np.maximum(abs(u), abs(v)) >= 0.6),
}
CLASS_NAMES = tuple(MASKS)


def make_shapes(seed: int = 0, *, train: int = TRAIN_IMAGES, test: int = TEST_IMAGES) -> ImageSet:
    """The ``shapes`` dataset of ``seed``: ``train`` and ``test`` images of 3 x 32 x 32."""
    if train < 1 or test < 0:
        raise DataError(f"shapes: {train} training and {test} test images; need at least one")
    SAMPLES.check(train + test, "shapes")
    train_images, train_labels = draw_shapes(np.random.default_rng([seed, 0]), train)
    test_images, test_labels = draw_shapes(np.random.default_rng([seed, 1]), test)
    return ImageSet(
        train_images,
        train_labels,
        test_images,
        test_labels,
        class_names=CLASS_NAMES,
        shape=SHAPES_SHAPE,
        name="shapes" if seed == 0 else f"shapes:{seed}",
    )


def draw_shapes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (uint8, ``(N, 3, 32, 32)``) and their labels, balanced over classes."""
    labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    _, height, width = SHAPES_SHAPE.dims
    # float32 throughout: a sixth of the time of float64 here, and plenty for 8-bit pixels.
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = _placements(rng, labels, xs, ys)
    covered = np.zeros((count, height, width), dtype=bool)
    for label, mask in enumerate(MASKS.values()):
        chosen = labels == label
        covered[chosen] = mask(u[chosen], v[chosen])
    colour = rng.uniform(0, 1, (count, 3)).astype(np.float32)
    pixels = _background(rng, colour, xs / (width - 1), ys / (height - 1))
    pixels = np.where(covered[:, None], colour[:, :, None, None], pixels)
    pixels += NOISE * rng.standard_normal(pixels.shape, dtype=np.float32)
    return np.rint(pixels.clip(0, 1) * 255).astype(np.uint8), labels


def _placements(
    rng: np.random.Generator, labels: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's coordinates ``(u, v)``, ``(N, H, W)`` each, relative to its image's shape:
    centred on it, tilted with it, in units of its radius."""
    count = len(labels)
    height, width = xs.shape
    radius = rng.uniform(6, 12, count)
    centre_x = radius + rng.uniform(0, 1, count) * (width - 1 - 2 * radius)
    centre_y = radius + rng.uniform(0, 1, count) * (height - 1 - 2 * radius)
    tilt = np.deg2rad(rng.uniform(-15, 15, count))
    upright = rng.uniform(0, 1, count) < 0.5
    tilt += np.where(upright & (labels == CLASS_NAMES.index("bar")), np.pi / 2, 0.0)
    r, cx, cy = (a.astype(np.float32)[:, None, None] for a in (radius, centre_x, centre_y))
    dx, dy = (xs[None] - cx) / r, (ys[None] - cy) / r
    cos = np.cos(tilt).astype(np.float32)[:, None, None]
    sin = np.sin(tilt).astype(np.float32)[:, None, None]
    return cos * dx + sin * dy, cos * dy - sin * dx


def _background(
    rng: np.random.Generator, colour: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """Gradients ``(N, 3, H, W)`` between two colours, each ``colour`` shifted by 0.35-0.65 in
    every channel (wrapping round), along a random direction; ``xs``, ``ys`` run over 0..1."""
    count = len(colour)
    ends = (colour[:, None] + rng.uniform(0.35, 0.65, (count, 2, 3)).astype(np.float32)) % 1
    direction = rng.uniform(0, 2 * np.pi, count).astype(np.float32)[:, None, None]
    along = np.cos(direction) * (xs[None] - 0.5) + np.sin(direction) * (ys[None] - 0.5)
    # along runs within about -0.71..0.71; as a weight 0..1 across the image:
    weight = (along * np.float32(1 / np.sqrt(2)) + np.float32(0.5))[:, None]
    return ends[:, 0, :, None, None] * (1 - weight) + ends[:, 1, :, None, None] * weight
