"""The built-in ``shapes`` dataset: made from a seed, balanced, and its classes really differ."""

from __future__ import annotations

import time

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.data.shapes import CLASS_NAMES, SHAPES_SHAPE, draw_shapes, make_shapes


def test_the_default_set_is_quick_balanced_and_typed() -> None:
    start = time.perf_counter()
    data = make_shapes()
    assert time.perf_counter() - start < 3
    assert data.name == "shapes" and data.shape == SHAPES_SHAPE and data.classes == 10
    assert data.class_names == CLASS_NAMES and len(set(CLASS_NAMES)) == 10
    assert (
        data.train_images.shape == SHAPES_SHAPE.batch(6000) and data.train_images.dtype == np.uint8
    )
    assert data.test_images.shape == SHAPES_SHAPE.batch(1000) and data.test_labels.dtype == np.int64
    assert np.bincount(data.train_labels).tolist() == [600] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10


def test_a_seed_gives_the_same_images_and_another_seed_others() -> None:
    first = make_shapes(3, train=50, test=20)
    again = make_shapes(3, train=50, test=20)
    other = make_shapes(4, train=50, test=20)
    assert first.name == "shapes:3"
    np.testing.assert_array_equal(first.train_images, again.train_images)
    np.testing.assert_array_equal(first.test_labels, again.test_labels)
    assert not np.array_equal(first.train_images, other.train_images)
    # The test images come from their own stream: more training images leave them as they are.
    np.testing.assert_array_equal(make_shapes(3, train=80, test=20).test_images, first.test_images)


def test_images_are_coloured_and_use_the_whole_range() -> None:
    images, _ = draw_shapes(np.random.default_rng(0), 200)
    assert images.min() == 0 and images.max() == 255
    pixels = images.astype(np.int64)
    # Colour: the channels of an image differ (a grey image would have them equal).
    assert np.abs(pixels[:, 0] - pixels[:, 1]).mean() > 20
    # Texture: no image is flat; the background varies across it.
    assert pixels.reshape(200, -1).std(axis=1).min() > 10


def _fourier_features(images: np.ndarray) -> np.ndarray:
    """Where each image differs from its typical colour, as the magnitude of its 2-D Fourier
    transform: blind to the shape's position and colour, alive to its form."""
    pixels = images.astype(np.float32) / 255
    typical = np.median(pixels.reshape(len(pixels), 3, -1), axis=2)[:, :, None, None]
    shape = (np.sqrt(((pixels - typical) ** 2).sum(axis=1)) > 0.3).astype(np.float32)
    spectrum = np.abs(np.fft.fft2(shape)).reshape(len(pixels), -1)
    features: np.ndarray = spectrum / np.linalg.norm(spectrum, axis=1, keepdims=True)
    return features


def test_the_classes_differ_in_form() -> None:
    """A nearest-centroid classifier on position- and colour-blind features, fitted on the
    training images, names most test images' shapes (chance is one in ten)."""
    data = make_shapes(0, train=2000, test=500)
    train, test = _fourier_features(data.train_images), _fourier_features(data.test_images)
    centroids = np.stack([train[data.train_labels == k].mean(axis=0) for k in range(10)])
    guesses = ((test[:, None] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    accuracy = (guesses == data.test_labels).mean()
    assert accuracy > 0.5
    per_class = [(guesses[data.test_labels == k] == k).mean() for k in range(10)]
    assert min(per_class) > 0.25  # no class is lost among the others


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(DataError, match="at least one"):
        make_shapes(train=0)
