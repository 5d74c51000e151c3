"""sklearn-digits: the real 8 x 8 digits inside scikit-learn, where it is installed."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.sklearn_digits import load_sklearn_digits
from tests.helpers import one_line_message

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (pip install identikit[digits])",
)


@needs_sklearn
def test_the_digits_are_all_there_scaled_and_split() -> None:
    data = load_sklearn_digits()
    assert data.shape == ImageShape(1, 8, 8) and data.name == "sklearn-digits"
    assert data.class_names == tuple("0123456789")
    assert len(data.train_images) + len(data.test_images) == 1797
    assert len(data.test_images) == round(1797 / 6)
    everything = np.concatenate([data.train_images, data.test_images])
    # 0..16 scaled to 0..255: both ends are reached and every value is a multiple's rounding.
    assert everything.min() == 0 and everything.max() == 255
    assert set(np.unique(everything).tolist()) <= {round(v * 255 / 16) for v in range(17)}
    counts = np.bincount(np.concatenate([data.train_labels, data.test_labels]), minlength=10)
    assert counts.min() >= 170  # about 180 of each digit
    again = load_sklearn_digits()
    np.testing.assert_array_equal(again.test_images, data.test_images)


@needs_sklearn
def test_the_digits_look_like_their_class() -> None:
    """A nearest-centroid classifier fitted on the training split reads the test split well:
    the images and labels belong together."""
    data = load_sklearn_digits()
    train = data.train_images.reshape(len(data.train_images), -1).astype(np.float64)
    test = data.test_images.reshape(len(data.test_images), -1).astype(np.float64)
    centroids = np.stack([train[data.train_labels == k].mean(0) for k in range(10)])
    guesses = ((test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (guesses == data.test_labels).mean() > 0.8


def test_without_scikit_learn_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if absent
    with pytest.raises(DataError) as caught:
        load_sklearn_digits()
    assert "pip install identikit[digits]" in one_line_message(caught)
