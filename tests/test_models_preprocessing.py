"""Preprocessing: the kind of outputs detected from the outputs themselves, and settings that must
be finite."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.models.preprocessing import Preprocessing, detect_output_kind
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
