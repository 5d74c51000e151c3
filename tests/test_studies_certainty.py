"""How sure a model is on real versus random images: the sources, drawn in chunks as one draw and in
the test images' shape (grey or colour), the real images of any dataset (the 8 x 8 digits, shapes,
an npz file) refused when not of the model's shape, the record, and the number of samples
checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.studies import certainty
from identikit.studies.certainty import (
    SOURCES,
    certainty_report,
    dataset_maxima,
    image_shape,
    max_probabilities,
    real_source,
    write_certainty,
)
from identikit.sweeps.result_files import CERTAINTY_FILE, read_certainty
from identikit.training.trainer import TrainSpec, train
from tests.helpers import (
    assert_refused,
    classifier,
    make_digits,
    one_line_message,
    run_cli,
    run_main,
)


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


# --- Any image shape, real images from any dataset ---------------------------------------------

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="scikit-learn is not installed"
)


def model_of(shape: ImageShape, classes: int = 10, seed: int = 0) -> Classifier:
    """An untrained softmax model for images of ``shape``, which it records."""
    torch.manual_seed(seed)
    model = build_model("softmax", classes, shape).eval()
    return Classifier(model, ModelInfo(name=f"softmax-{shape}", input_shape=shape))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_draws_colour_images_of_their_shape(name: str) -> None:
    test = np.random.default_rng(0).integers(0, 256, (7, 3, 10, 12), dtype=np.uint8)
    assert image_shape(test) == ImageShape(3, 10, 12)
    images = SOURCES[name](test, 0, 5, torch.Generator().manual_seed(1))
    assert images.shape == (1 if name == "blank" else 5, 3, 10, 12)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_shuffled_colour_images_keep_every_pixels_colour() -> None:
    """Pixels move with their three channels: the same colours, in other places."""
    test = np.random.default_rng(1).integers(0, 256, (4, 3, 6, 5), dtype=np.uint8)
    shuffled = SOURCES["pixel-shuffled"](test, 0, 4, torch.Generator().manual_seed(0))
    original = torch.from_numpy(test).float().div(255.0)
    for before, after in zip(original, shuffled, strict=True):
        colours = sorted(map(tuple, before.reshape(3, -1).T.tolist()))
        assert sorted(map(tuple, after.reshape(3, -1).T.tolist())) == colours
        assert not torch.equal(before, after)


def test_grey_shuffling_is_the_permutation_it_always_was() -> None:
    """One channel: one permutation of all values, drawn as before colour existed (MNIST's
    certainty figures stay as they were)."""
    test = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    shuffled = SOURCES["pixel-shuffled"](test, 0, 3, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    pixels = torch.from_numpy(test).float().div(255.0).view(3, -1)
    order = torch.rand(pixels.shape, generator=generator).argsort(dim=1)
    assert torch.equal(shuffled, pixels.gather(1, order).view(3, 1, 28, 28))


def test_certainty_of_a_colour_model_on_shapes() -> None:
    model = model_of(ImageShape(3, 32, 32))
    maxima = dataset_maxima(model, "shapes", samples=40, seed=1)
    assert list(maxima) == ["shapes-test", *list(SOURCES)[1:]]
    assert len(maxima["shapes-test"]) == 40 and len(maxima["uniform-noise"]) == 40
    again = dataset_maxima(model, "shapes", samples=40, seed=1)
    for name, values in maxima.items():
        assert ((values >= 0.1) & (values <= 1)).all(), name
        np.testing.assert_array_equal(values, again[name])


@needs_sklearn
def test_certainty_of_a_trained_model_on_the_8x8_digits(tmp_path: Path) -> None:
    out = tmp_path / "digits.pt"
    spec = TrainSpec("softmax", dataset="sklearn-digits", epochs=3, device="cpu")
    train(spec, out=out, progress=False)
    model = load_classifier(out)
    maxima = dataset_maxima(model, "sklearn-digits", samples=100)
    assert len(maxima["sklearn-digits-test"]) == 100
    report = certainty_report(maxima)
    # Trained, it is surer on the real digits than on pixels strewn at random.
    assert report["sklearn-digits-test"]["median"] > report["uniform-noise"]["median"]
    write_certainty(model, maxima, tmp_path / "c")
    assert read_certainty(tmp_path / "c") == report


def test_certainty_on_images_of_an_npz_file(tmp_path: Path) -> None:
    """A real archive of N x H x W x C pixels: its test split (a seeded sixth) is the real
    images, named ``test-images`` in the record."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (60, 12, 10, 3), dtype=np.uint8)
    np.savez(tmp_path / "pictures.npz", images=images, labels=np.arange(60) % 3)
    model = model_of(ImageShape(3, 12, 10), classes=3)
    maxima = dataset_maxima(model, f"npz:{tmp_path / 'pictures.npz'}", samples=30)
    assert len(maxima["test-images"]) == 10  # the test split runs out first
    assert real_source("fashion-mnist") == "fashion-mnist-test"
    assert real_source("shapes:3") == real_source("npz:x.npz") == "test-images"


def test_a_dataset_of_another_shape_is_refused_naming_both() -> None:
    model = model_of(ImageShape(1, 28, 28))
    with pytest.raises(IdentikitError) as error:
        dataset_maxima(model, "shapes", samples=10)
    message = one_line_message(error)
    assert "3x32x32" in message and "1x28x28" in message and "shapes" in message
    grey = np.zeros((5, 12, 9), dtype=np.uint8)
    with pytest.raises(IdentikitError, match="1x12x9 images but softmax-1x28x28 takes 1x28x28"):
        max_probabilities(model, grey, samples=5)
