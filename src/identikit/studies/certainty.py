"""How sure is a model? Its largest softmax output on real test images versus random images.

A model trained with softmax cross-entropy is usually very sure on its test images; on random
images a well-behaved model should be much less sure (Hendrycks & Gimpel 2017 use exactly this
maximum softmax probability as a baseline detector of out-of-distribution inputs).

The real images are the test split of any dataset :func:`~identikit.data.images.load_images`
reads (:func:`dataset_maxima`), refused when their shape is not the model's; the random images
take that shape, whatever its channels and size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from identikit.base.analysis import certainty_stats
from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError
from identikit.base.figures import certainty_histogram
from identikit.base.limits import SAMPLES
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.data.images import load_images
from identikit.sweeps.result_files import write_certainty_record

# Images generated and scored at once: 31 MB of MNIST's pixels. The default 10,000 samples are
# one chunk, as they were one draw before; a larger --samples is drawn chunk after chunk from
# the same generator, whose CPU stream does not depend on how it is cut (10,000 images hold a
# multiple of 16 numbers whatever their size, so torch.randn's blocks of 16 numbers never
# straddle two chunks).
CHUNK = 10_000

REAL = "mnist-test"
"""The key of the real test images among :data:`SOURCES`; a record names them after their
dataset (:func:`real_source`)."""

Source = Callable[[np.ndarray, int, int, torch.Generator], torch.Tensor]
"""(test images, first, count, generator) -> the source's images first .. first + count - 1;
fewer (none) where the source runs out. Random images take the test images' shape."""


def image_shape(test: np.ndarray) -> ImageShape:
    """The shape of one test image: ``(N, C, H, W)`` arrays, or ``(N, H, W)`` grey ones."""
    if test.ndim == 3:
        return ImageShape(1, int(test.shape[1]), int(test.shape[2]))
    if test.ndim != 4:
        raise IdentikitError(f"test images must be (N, C, H, W) or (N, H, W), got {test.shape}")
    return ImageShape.of(test.shape[1:])


def _mnist(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    images = torch.from_numpy(test[first : first + n]).float().div(255.0)
    return images.view(-1, *image_shape(test).dims)


def _uniform(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(image_shape(test).batch(n), generator=g)


def _gaussian(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # Mean 0.5, standard deviation 0.25, clipped to the pixel range.
    return (0.5 + 0.25 * torch.randn(image_shape(test).batch(n), generator=g)).clamp_(0.0, 1.0)


def _sparse_dots(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # White dots on black, each pixel lit with probability 0.05 (about 39 dots on MNIST's
    # images), like MNIST's ink.
    return (torch.rand(image_shape(test).batch(n), generator=g) < 0.05).float()


def _blank(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # One image in all: every blank image is the same.
    return torch.zeros(image_shape(test).batch(1 if first == 0 else 0))


def _shuffled(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # Real images with their pixels permuted: the same ink (and colours), no shape. A pixel
    # moves with all its channels, so a colour image keeps its palette; for one channel this
    # is the one permutation of all values it always was.
    shape = image_shape(test)
    area = shape.height * shape.width
    pixels = _mnist(test, first, n, g).reshape(-1, shape.channels, area)
    order = torch.rand((len(pixels), area), generator=g).argsort(dim=1)
    moved = pixels.gather(2, order.unsqueeze(1).expand(-1, shape.channels, -1))
    return moved.view(-1, *shape.dims)


SOURCES: dict[str, Source] = {
    REAL: _mnist,
    "uniform-noise": _uniform,
    "gaussian-noise": _gaussian,
    "sparse-dots": _sparse_dots,
    "blank": _blank,
    "pixel-shuffled": _shuffled,
}


def images_scored(samples: int) -> int:
    """The most images a measurement of ``samples`` per source scores: the work its engine
    choice weighs (:class:`identikit.engines.options.EngineOptions`)."""
    return samples * len(SOURCES)


def real_source(dataset: str) -> str:
    """The name of the real images of ``dataset`` in a record: ``mnist-test``,
    ``shapes-test``; ``test-images`` for a spec naming a file or seed (``npz:x.npz``)."""
    return f"{dataset}-test" if re.fullmatch(r"[a-z0-9-]+", dataset) else "test-images"


def _check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise IdentikitError(f"samples must be a whole number >= 1, got {samples!r}")
    SAMPLES.check(samples, "samples")


def max_probabilities(
    classifier: Classifier,
    test_images: np.ndarray,
    *,
    samples: int = 10_000,
    seed: int = 0,
    real: str = REAL,
) -> dict[str, np.ndarray]:
    """The largest softmax output for the images of every source (``samples`` each, fewer
    where a source runs out: the test set, the one blank image). ``test_images`` are uint8,
    ``(N, C, H, W)`` (or ``(N, H, W)`` for one channel), of the model's shape; ``real`` is
    their name in the result."""
    _check_samples(samples)
    check_shape(classifier, image_shape(test_images), "the test images")
    return {
        real if make is _mnist else name: _maxima(
            classifier, make, test_images, samples, torch.Generator().manual_seed(seed)
        )
        for name, make in SOURCES.items()
    }


def _maxima(
    classifier: Classifier,
    make: Source,
    test_images: np.ndarray,
    samples: int,
    generator: torch.Generator,
) -> np.ndarray:
    """One source's largest softmax outputs, its images made and scored CHUNK at a time."""
    parts = []
    for first in range(0, samples, CHUNK):
        images = make(test_images, first, min(CHUNK, samples - first), generator)
        if len(images) == 0:
            break
        parts.append(classifier.probabilities(images).max(dim=1).values.cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def check_shape(classifier: Classifier, shape: ImageShape, what: str) -> None:
    """Refuse images (``what``) of another shape than the model takes, naming both."""
    if shape != classifier.info.input_shape:
        raise IdentikitError(
            f"{what} are {shape} images but {classifier.name} takes "
            f"{classifier.info.input_shape}: use a dataset of the model's shape"
        )


def dataset_test_images(
    classifier: Classifier, dataset: str = "mnist", root: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """The test split of ``dataset`` (any spec :func:`load_images` reads; ``root``: where the
    IDX datasets are) as uint8 ``(N, C, H, W)``, refused unless its shape is the model's."""
    data = load_images(dataset, root)
    check_shape(classifier, data.shape, f"the test images of {dataset}")
    return data.split("test")[0]


def dataset_maxima(
    classifier: Classifier,
    dataset: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    *,
    samples: int = 10_000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`max_probabilities` with the real images from the test split of ``dataset``.

    The number of samples is checked before the data is read: a wrong one costs nothing."""
    _check_samples(samples)
    test_images = dataset_test_images(classifier, dataset, root)
    real = real_source(dataset)
    return max_probabilities(classifier, test_images, samples=samples, seed=seed, real=real)


def certainty_report(maxima: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean, median and fractions above 0.6 / 0.9 / 0.99 per source."""
    return {name: certainty_stats(values.tolist()) for name, values in maxima.items()}


def write_certainty(
    classifier: Classifier, maxima: dict[str, np.ndarray], out: str | os.PathLike[str]
) -> None:
    """Write ``certainty.json`` (statistics) and ``certainty.png`` (histograms) into ``out``."""

    folder = Path(out)
    write_certainty_record(folder, certainty_report(maxima))
    atomic_write_bytes(
        folder / "certainty.png",
        certainty_histogram(maxima, title=f"{classifier.name}: largest softmax output"),
    )
