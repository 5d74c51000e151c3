"""Preprocessing: the kind of outputs detected from the outputs themselves, settings that must
be finite, a mean and std per channel, the channels-last layout, and the conventions in one line."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.models.preprocessing import Preprocessing, detect_output_kind, values_text
from tests.helpers import INF, NAN


def test_output_detection() -> None:
    logits = torch.randn(4, 10) * 3
    assert detect_output_kind(logits) == "logits"
    assert detect_output_kind(logits.softmax(1)) == "probabilities"
    assert detect_output_kind(logits.log_softmax(1)) == "log-probabilities"


@pytest.mark.parametrize("settings", [{"mean": NAN}, {"mean": INF}, {"std": NAN}, {"std": INF}])
def test_preprocessing_refuses_non_finite_values(settings: dict[str, Any]) -> None:
    name = next(iter(settings))
    with pytest.raises(IdentikitError, match=f"--{name} must be a finite number"):
        Preprocessing(**settings)


def test_one_value_or_one_per_channel() -> None:
    one = Preprocessing(mean=(0.5,), std=(2,))
    assert one.mean == 0.5 and one.std == 2.0 and isinstance(one.std, float)  # plain floats
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    per_channel = Preprocessing(mean=mean, std=std)
    assert per_channel.mean == mean and per_channel.std == std
    pixels = torch.rand(2, 3, 4, 5)
    inputs = per_channel.to_model(pixels)
    for c in range(3):
        assert torch.allclose(inputs[:, c], (pixels[:, c] - mean[c]) / std[c])
    assert torch.allclose(per_channel.to_pixels(inputs), pixels, atol=1e-6)


def test_a_scalar_mean_computes_what_it_always_computed() -> None:
    pixels = torch.rand(3, 1, 28, 28)
    inputs = Preprocessing(input_range="0,255", mean=33.3, std=78.6).to_model(pixels)
    assert torch.equal(inputs, (pixels * 255.0 + 0.0 - 33.3) / 78.6)  # bit for bit


def test_nhwc_layout_permutes_and_back() -> None:
    channels_last = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7), layout="nhwc")
    pixels = torch.rand(2, 3, 4, 5)
    inputs = channels_last.to_model(pixels)
    assert inputs.shape == (2, 4, 5, 3)
    assert torch.allclose(inputs[:, :, :, 1], (pixels[:, 1] - 0.2) / 0.6)
    assert torch.allclose(channels_last.to_pixels(inputs), pixels, atol=1e-6)
    assert not Preprocessing(layout="nhwc").is_identity and Preprocessing().is_identity
    assert channels_last.model_dims(ImageShape(3, 4, 5)) == (4, 5, 3)
    assert Preprocessing().model_dims(ImageShape(3, 4, 5)) == (3, 4, 5)


def test_describe_says_the_conventions_in_one_line() -> None:
    assert Preprocessing().describe() == "pixels 0,1; layout nchw"
    described = Preprocessing(
        mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), layout="nhwc", outputs="logits"
    ).describe()
    assert described == (
        "pixels 0,1; mean 0.49,0.48,0.45; std 0.25,0.24,0.26; layout nhwc; outputs logits"
    )
    assert values_text(0.5) == "0.5" and values_text((0.5, 0.25)) == "0.5,0.25"


def test_a_mean_or_std_of_another_length_than_the_channels_is_refused() -> None:
    three = Preprocessing(mean=(0.1, 0.2, 0.3))
    three.check(ImageShape(3, 8, 8))
    with pytest.raises(IdentikitError) as error:
        three.check(ImageShape(1, 28, 28))
    assert str(error.value) == (
        "--mean has 3 values, but the model's images (1x28x28) have 1 channel: give 1 value"
    )
    with pytest.raises(IdentikitError, match=r"--std has 2 values.*3 channels: give 1 value or 3"):
        Preprocessing(std=(0.5, 0.5)).check(ImageShape(3, 8, 8))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"std": (0.5, 0.0)}, "--std must be a finite number > 0"),
        ({"mean": (0.5, NAN)}, "--mean must be a finite number"),
        ({"mean": ()}, "--mean must be a finite number .* got none"),
        ({"layout": "chw"}, "--layout must be one of nchw, nhwc"),
    ],
)
def test_bad_conventions_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(IdentikitError, match=message):
        Preprocessing(**settings)
