"""The model as it travels to the workers: its bytes load as its file does, in every format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier.loading import load_classifier
from identikit.cluster.model_source import LoadOptions, ModelSource
from identikit.engines.options import EngineOptions
from identikit.models.preprocessing import Preprocessing


@pytest.mark.parametrize("fmt", ["checkpoint", "onnx"])
def test_the_bytes_load_as_the_file_does(models: dict[str, Path], fmt: str) -> None:
    options = LoadOptions(
        device="cpu",
        preprocessing=Preprocessing(outputs="logits"),
        engine=EngineOptions(backend="eager" if fmt == "checkpoint" else None, log=print),
    )
    source = ModelSource.read(models[fmt], options)
    assert source.options.engine is not None and source.options.engine.log is None
    loaded = source.load()
    direct = load_classifier(models[fmt], device="cpu", engine=options.engine)
    assert (
        (loaded.name, loaded.sha256)
        == (direct.name, direct.sha256)
        == (
            models[fmt].name,
            source.sha256,
        )
    )
    assert loaded.info.input_shape == direct.info.input_shape
    images = torch.rand(loaded.info.input_shape.batch(3))
    assert torch.equal(loaded.log_probabilities(images), direct.log_probabilities(images))


def test_bytes_that_are_no_model_are_one_line(tmp_path: Path) -> None:
    source = ModelSource(b"not a model", "broken.pt")
    with pytest.raises(IdentikitError) as error:
        source.load()
    assert "broken.pt" in str(error.value) and "\n" not in str(error.value)
