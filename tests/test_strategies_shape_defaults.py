"""Black-box strategies' defaults follow the image's size and channels (issue 29): MNIST's on
grey images of 28 x 28, those measured on 8 x 8 grey and 3 x 32 x 32 colour elsewhere; a value
given is kept, a sweep records the values taken, and the search says which came from the shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.strategies.base import Group
from identikit.strategies.registry import make_strategy
from identikit.strategies.shape_defaults import derived_line
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder

MNIST, DIGITS8, COLOUR = ImageShape(1, 28, 28), ImageShape(1, 8, 8), ImageShape(3, 32, 32)


def shaped(name: str, shape: ImageShape, **given: object) -> dict[str, object]:
    return dict(make_strategy(name, **given).for_shape(shape).settings())


def test_mnist_keeps_the_defaults_it_always_had() -> None:
    assert shaped("square", MNIST) == {
        "candidates": 1,
        "side": 14,
        "amplitude": 1.0,
        "schedule_queries": 10_000,
    }
    assert shaped("random-masks", MNIST) == {
        "candidates": 500,
        "mask_density": 0.05,
        "mask_amplitude": 1.0,
    }
    assert shaped("evolution", MNIST)["density"] == 0.05
    for name in ("square", "random-masks", "evolution"):
        assert derived_line(make_strategy(name), MNIST) is None  # nothing new said on MNIST


def test_8x8_grey_takes_half_amplitude_squares_few_masks_and_six_values() -> None:
    square = shaped("square", DIGITS8)
    assert (square["side"], square["amplitude"]) == (4, 0.5)
    masks = shaped("random-masks", DIGITS8)
    assert (masks["candidates"], masks["mask_density"]) == (20, 0.05)
    assert shaped("evolution", DIGITS8)["density"] == pytest.approx(0.1)
    line = derived_line(make_strategy("square"), DIGITS8)
    assert line == (
        "square on 1 x 8 x 8 images: side 4, amplitude 0.5 "
        "(from the image's shape; --option overrides)"
    )


def test_32x32_colour_takes_full_squares_and_masks_of_about_six_values() -> None:
    square = shaped("square", COLOUR)
    assert (square["side"], square["amplitude"]) == (16, 1.0)
    masks = shaped("random-masks", COLOUR)
    assert masks["candidates"] == 20
    assert masks["mask_density"] == pytest.approx(0.002, rel=0.05)
    assert shaped("evolution", COLOUR)["density"] == pytest.approx(0.002, rel=0.05)
    line = derived_line(make_strategy("random-masks"), COLOUR)
    assert line is not None and "candidates 20, mask_density 0.00208" in line


def test_values_given_are_kept_on_every_shape() -> None:
    for shape in (MNIST, DIGITS8, COLOUR):
        assert shaped("square", shape, amplitude=1.0)["amplitude"] == 1.0
        masks = shaped("random-masks", shape, candidates=500, mask_density=0.05)
        assert (masks["candidates"], masks["mask_density"]) == (500, 0.05)
        assert shaped("evolution", shape, density=0.05)["density"] == 0.05
    # Given, not from the shape: the line leaves it out.
    assert derived_line(make_strategy("square", amplitude=1.0, side=4), DIGITS8) is None


def test_an_unshaped_strategy_proposes_as_for_its_images() -> None:
    """Used without for_shape (as a library caller may), a strategy takes the defaults of the
    images it is given: the same candidates as made for their shape."""

    def group() -> Group:
        images = torch.full((1, 1, 8, 8), 0.5)
        return Group(
            images=images,
            scores=torch.zeros(1),
            targets=torch.zeros(1, dtype=torch.long),
            iterations=torch.zeros(1, dtype=torch.long),
            generators=[torch.Generator().manual_seed(3)],
            memory={},
        )

    for name in ("square", "random-masks"):
        plain = make_strategy(name).propose(group())
        made = make_strategy(name).for_shape(DIGITS8).propose(group())
        assert torch.equal(plain, made)
    assert make_strategy("random-masks").propose(group()).shape[1] == 20


def test_a_sweep_of_8x8_records_and_uses_the_shapes_defaults(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("softmax", 10, DIGITS8)
    info = ModelInfo(name="8x8.pt", sha256="8x8", input_shape=DIGITS8)
    config = SweepConfig(digits=(0,), runs=1, strategy="random-masks", max_queries=201)
    outcome = sweep_to_folder(
        Classifier(model, info), config, tmp_path / "s", options=SweepOptions(progress=False)
    )
    assert outcome.results is not None
    results = outcome.results
    assert results["settings"]["strategy_settings"]["candidates"] == 20
    assert results["queries_per_step"] == 20
    assert results["runs"][0]["queries"] == 201  # 1 + 10 steps of 20: 20 a step, not 500
