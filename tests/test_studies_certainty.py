"""How sure a model is on real versus random images: the sources, drawn in chunks as one draw and in
the test images' shape, the record, and the number of samples checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.studies import certainty
from identikit.studies.certainty import (
    SOURCES,
    certainty_report,
    image_shape,
    max_probabilities,
    write_certainty,
)
from identikit.sweeps.result_files import CERTAINTY_FILE, read_certainty
from tests.helpers import assert_refused, classifier, make_digits, run_cli, run_main


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_draws_images_of_the_test_images_shape(name: str) -> None:
    """Random images take the shape of the real ones: nothing assumes 28 x 28."""
    test = np.random.default_rng(0).integers(0, 256, (7, 12, 9), dtype=np.uint8)
    assert image_shape(test) == ImageShape(1, 12, 9)
    images = SOURCES[name](test, 0, 5, torch.Generator().manual_seed(1))
    count = 1 if name == "blank" else 5
    assert images.shape == (count, 1, 12, 9)
    assert images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    later = SOURCES[name](test, 5, 5, torch.Generator().manual_seed(1))
    assert len(later) == {"blank": 0, "mnist-test": 2, "pixel-shuffled": 2}.get(name, 5)


def test_sources_drawn_in_chunks_are_one_draw() -> None:
    test_images = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    for name, make in certainty.SOURCES.items():
        whole = make(test_images, 0, 25, torch.Generator().manual_seed(3))
        generator = torch.Generator().manual_seed(3)
        parts = [
            make(test_images, first, min(7, 25 - first), generator) for first in (0, 7, 14, 21)
        ]
        assert torch.equal(whole, torch.cat(parts)), name


def test_certainty_sources_and_report() -> None:
    classifier = Classifier(build_model("softmax"))
    test_images, _ = make_digits(50)
    maxima = max_probabilities(classifier, test_images, samples=50)
    assert list(maxima) == list(SOURCES)
    assert len(maxima["mnist-test"]) == 50 and len(maxima["blank"]) == 1
    report = certainty_report(maxima)
    for row in report.values():
        assert 0.1 <= row["mean"] <= 1 and 0 <= row["above_0.99"] <= row["above_0.6"] <= 1


def test_the_certainty_record_reads_back_as_reported(tmp_path: Path) -> None:
    test_images, _ = make_digits(40)
    model = classifier()
    maxima = max_probabilities(model, test_images, samples=30, seed=2)
    assert {name: len(values) for name, values in maxima.items()} == {
        **{name: 30 for name in SOURCES},
        "blank": 1,
    }
    write_certainty(model, maxima, tmp_path)
    report = certainty_report(maxima)
    assert read_certainty(tmp_path) == report
    assert json.loads((tmp_path / CERTAINTY_FILE).read_text()) == {"version": 1, **report}
    assert (tmp_path / "certainty.png").read_bytes().startswith(b"\x89PNG")


def softmax_classifier() -> Classifier:
    torch.manual_seed(0)
    return Classifier(build_model("softmax").eval())


@pytest.mark.parametrize("samples", [0, -1, True, 2.5, 10**8])
def test_max_probabilities_refuses_bad_samples(samples: Any) -> None:
    test_images = np.zeros((5, 28, 28), dtype=np.uint8)
    with pytest.raises(IdentikitError, match="samples"):
        certainty.max_probabilities(softmax_classifier(), test_images, samples=samples)


def test_max_probabilities_scores_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = softmax_classifier()
    test_images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    whole = certainty.max_probabilities(classifier, test_images, samples=50, seed=1)
    batches: list[int] = []
    score = classifier.probabilities

    def counted(images: torch.Tensor) -> torch.Tensor:
        batches.append(len(images))
        return score(images)

    monkeypatch.setattr(certainty, "CHUNK", 16)
    monkeypatch.setattr(classifier, "probabilities", counted)
    chunked = certainty.max_probabilities(classifier, test_images, samples=50, seed=1)
    assert max(batches) <= 16
    assert {k: len(v) for k, v in chunked.items()} == {k: len(v) for k, v in whole.items()}
    assert len(chunked["mnist-test"]) == 20 and len(chunked["blank"]) == 1
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    ("samples", "fragment"),
    [
        ("0", "argument --samples"),
        ("-1", "argument --samples"),
        ("1e8", "a whole number"),
        ("100000000", "IDENTIKIT_LIMIT_SAMPLES"),
    ],
)
def test_certainty_samples(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], samples: str, fragment: str
) -> None:
    args = ("certainty", "--model", str(models["checkpoint"]), "--samples", samples)
    result = run_main(capsys, *args)
    assert_refused(result, "--samples", fragment)


@pytest.mark.mnist
def test_certainty_cli_on_real_mnist(mnist_root: Path, mnist_softmax: Path, tmp_path: Path) -> None:
    model = mnist_softmax
    proc = run_cli(
        "certainty",
        "--model",
        str(model),
        "--root",
        str(mnist_root),
        "--json",
        "--samples",
        "2000",
        "--out",
        str(tmp_path / "c"),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == set(SOURCES)
    assert report["mnist-test"]["n"] == 2000
    assert report["mnist-test"]["median"] > 0.9  # sure on real digits ...
    assert report["sparse-dots"]["median"] < report["mnist-test"]["median"]  # ... less on dots
    assert (tmp_path / "c" / "certainty.png").stat().st_size > 1000
