"""How sure is a model? Its largest softmax output on real digits versus random images.

A model trained with softmax cross-entropy is usually very sure on its test images; on random
images a well-behaved model should be much less sure (Hendrycks & Gimpel 2017 use exactly this
maximum softmax probability as a baseline detector of out-of-distribution inputs).
"""

from __future__ import annotations

import os
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
from identikit.sweeps.result_files import write_certainty_record

# Images generated and scored at once: 31 MB of MNIST's pixels. The default 10,000 samples are
# one chunk, as they were one draw before; a larger --samples is drawn chunk after chunk from
# the same generator, whose CPU stream does not depend on how it is cut (10,000 images hold a
# multiple of 16 numbers whatever their size, so torch.randn's blocks of 16 numbers never
# straddle two chunks).
CHUNK = 10_000

Source = Callable[[np.ndarray, int, int, torch.Generator], torch.Tensor]
"""(test images, first, count, generator) -> the source's images first .. first + count - 1;
fewer (none) where the source runs out. Random images take the test images' shape."""


def image_shape(test: np.ndarray) -> ImageShape:
    """The shape of one of the test split's grey images, (N, H, W)."""
    return ImageShape(1, int(test.shape[1]), int(test.shape[2]))


def _mnist(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.from_numpy(test[first : first + n]).unsqueeze(1).float().div(255.0)


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
    # Real digits with their pixels permuted: the same ink, no shape.
    shape = image_shape(test)
    pixels = _mnist(test, first, n, g).view(-1, shape.size)
    order = torch.rand(pixels.shape, generator=g).argsort(dim=1)
    return pixels.gather(1, order).view(-1, *shape.dims)


SOURCES: dict[str, Source] = {
    "mnist-test": _mnist,
    "uniform-noise": _uniform,
    "gaussian-noise": _gaussian,
    "sparse-dots": _sparse_dots,
    "blank": _blank,
    "pixel-shuffled": _shuffled,
}


def max_probabilities(
    classifier: Classifier, test_images: np.ndarray, *, samples: int = 10_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """The largest softmax output for the images of every source (``samples`` each, fewer
    where a source runs out: the test set, the one blank image)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise IdentikitError(f"samples must be a whole number >= 1, got {samples!r}")
    SAMPLES.check(samples, "samples")
    return {
        name: _maxima(classifier, make, test_images, samples, torch.Generator().manual_seed(seed))
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
