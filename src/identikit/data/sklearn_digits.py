"""The 8 x 8 handwritten digits bundled with scikit-learn (``sklearn-digits``).

1,797 grey images of the digits 0-9, 8 x 8 pixels of counts 0..16: the test set of the UCI
"Optical Recognition of Handwritten Digits" data (Alpaydin & Kaynak, 1998, "Cascading
classifiers", Kybernetika 34(4)), each 32 x 32 bitmap reduced to counts of set pixels in
4 x 4 blocks. scikit-learn ships the file inside its wheel, so the set is there offline; it is
an optional dependency (``pip install identikit[digits]``).
"""

from __future__ import annotations

import numpy as np

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.image_set import ImageSet, seeded_split

DIGITS_SHAPE = ImageShape(1, 8, 8)
LEVELS = 16
"""The largest pixel value in the set (a count of 16 set pixels); scaled to 255."""


def load_sklearn_digits(*, name: str = "sklearn-digits") -> ImageSet:
    """The digits as uint8 images (0..16 scaled to 0..255), a fixed random sixth for testing."""
    try:
        # Optional: scikit-learn is large and only this dataset needs it.
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "sklearn-digits needs scikit-learn: pip install identikit[digits]"
        ) from None
    bunch = load_digits()
    values = np.asarray(bunch.images, dtype=np.float64)
    if values.shape[1:] != (DIGITS_SHAPE.height, DIGITS_SHAPE.width):
        raise DataError(f"scikit-learn's digits are {values.shape[1:]}, expected 8 x 8")
    images = np.rint(values * (255 / LEVELS)).clip(0, 255).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    return ImageSet(
        *seeded_split(images, labels),
        class_names=tuple(str(d) for d in range(10)),
        shape=DIGITS_SHAPE,
        name=name,
        held_out=True,
    )
