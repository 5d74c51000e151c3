"""How sure is a model? Its largest softmax output on real digits versus random images.

A model trained with softmax cross-entropy is usually very sure on its test images; on random
images a well-behaved model should be much less sure (Hendrycks & Gimpel 2017 use exactly this
maximum softmax probability as a baseline detector of out-of-distribution inputs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from identikit.base.analysis import certainty_stats
from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.figures import certainty_histogram
from identikit.base.limits import SAMPLES
from identikit.classifier.classifier import Classifier

# Images generated and scored at once: 31 MB of pixels. The default 10,000 samples are one
# chunk, as they were one draw before; a larger --samples is drawn chunk after chunk from the
# same generator, whose CPU stream does not depend on how it is cut (each chunk is a whole
# number of 784-pixel images, so torch.randn's blocks of 16 numbers never straddle two).
CHUNK = 10_000

Source = Callable[[np.ndarray, int, int, torch.Generator], torch.Tensor]
"""(test images, first, count, generator) -> the source's images first .. first + count - 1;
fewer (none) where the source runs out."""


def _mnist(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.from_numpy(test[first : first + n]).unsqueeze(1).float().div(255.0)


def _uniform(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=g)


def _gaussian(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # Mean 0.5, standard deviation 0.25, clipped to the pixel range.
    return (0.5 + 0.25 * torch.randn(n, 1, 28, 28, generator=g)).clamp_(0.0, 1.0)


def _sparse_dots(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # White dots on black, each pixel lit with probability 0.05 (about 39 dots), like MNIST's ink.
    return (torch.rand(n, 1, 28, 28, generator=g) < 0.05).float()


def _blank(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # One image in all: every blank image is the same.
    return torch.zeros(1 if first == 0 else 0, 1, 28, 28)


def _shuffled(test: np.ndarray, first: int, n: int, g: torch.Generator) -> torch.Tensor:
    # Real digits with their pixels permuted: the same ink, no shape.
    pixels = _mnist(test, first, n, g).view(-1, 784)
    order = torch.rand(pixels.shape, generator=g).argsort(dim=1)
    return pixels.gather(1, order).view(-1, 1, 28, 28)


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
    atomic_write_text(folder / "certainty.json", json.dumps(certainty_report(maxima), indent=1))
    atomic_write_bytes(
        folder / "certainty.png",
        certainty_histogram(maxima, title=f"{classifier.name}: largest softmax output"),
    )


def format_certainty(name: str, report: dict[str, dict[str, float]]) -> str:
    """The certainty table as printed by ``identikit certainty``."""
    lines = [
        f"{name}: largest softmax output",
        f"{'source':16s} {'n':>6s} {'mean':>6s} {'median':>6s} {'>0.6':>6s} {'>0.9':>6s} "
        f"{'>0.99':>6s}",
    ]
    for source, row in report.items():
        lines.append(
            f"{source:16s} {row['n']:6d} {row['mean']:6.3f} {row['median']:6.3f} "
            f"{row['above_0.6']:6.1%} {row['above_0.9']:6.1%} {row['above_0.99']:6.1%}"
        )
    return "\n".join(lines)
