"""ONNX files the engines make and read: exports cached by weights, bad or truncated ones made
again, and a user's own file never deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier import Classifier, load_classifier
from identikit.engines import tuning
from identikit.engines.options import EngineOptions
from identikit.engines.target import Target
from tests.helpers import export_onnx, one_line_message, seeded_linear, trained_like_cnn

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


def test_onnx_export_is_cached_by_weights(tmp_path: Path) -> None:
    Classifier(
        trained_like_cnn(0), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    Classifier(
        trained_like_cnn(0), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    Classifier(
        trained_like_cnn(1), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


def test_a_bad_cached_export_is_refused_and_redone(tmp_path: Path) -> None:
    """An export that does not match the model (here: another model's) is never used: it is
    exported again, in the same call."""
    Classifier(
        trained_like_cnn(0), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    (first,) = (tmp_path / "onnx").glob("*.onnx")
    Classifier(
        trained_like_cnn(1), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    (second,) = set((tmp_path / "onnx").glob("*.onnx")) - {first}
    second.write_bytes(first.read_bytes())
    redone = Classifier(
        trained_like_cnn(1), engine=EngineOptions(backend="onnx", chunk_size=64, cache_dir=tmp_path)
    )
    assert redone.choice.backend == "onnx"
    assert second.read_bytes() != first.read_bytes()


def cut_short(path: Path) -> None:
    """What a full disk or a kill mid-write leaves: the first half of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_cached_export_is_rebuilt_and_used(tmp_path: Path) -> None:
    model = seeded_linear()
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        eager = torch.softmax(model(images), dim=1)
    first = Classifier(model, engine=EngineOptions(backend="onnx", cache_dir=tmp_path))
    assert first.choice.backend == "onnx" and first.choice.how == "measured"
    (export,) = (tmp_path / "onnx").glob("*.onnx")
    whole = export.stat().st_size
    cut_short(export)
    # the cached choice is read, its export fails to load, and is made again in the same call
    again = Classifier(model, engine=EngineOptions(backend="onnx", cache_dir=tmp_path))
    assert again.choice.backend == "onnx" and again.choice.how == "cached"
    assert again.scorer.backend == "onnx"
    assert (again.probabilities(images) - eager).abs().max() <= 1e-5
    assert export.stat().st_size == whole
    # and when measuring, not reading the cache
    cut_short(export)
    measured = Classifier(
        model, engine=EngineOptions(backend="onnx", cache_dir=tmp_path, remeasure=True)
    )
    assert measured.choice.backend == "onnx" and measured.choice.how == "measured"
    assert export.stat().st_size == whole


def test_a_truncated_int8_file_is_rebuilt_and_the_users_file_kept(tmp_path: Path) -> None:
    user_file = export_onnx(seeded_linear(), tmp_path / "users.onnx")
    original = user_file.read_bytes()
    cache = tmp_path / "cache"
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    fp32 = load_classifier(user_file, device="cpu", engine=EngineOptions(cache_dir=cache))
    load_classifier(
        user_file, device="cpu", engine=EngineOptions(precision="int8", cache_dir=cache)
    )
    (int8,) = (cache / "onnx").glob("*-int8.onnx")
    cut_short(int8)
    low = load_classifier(
        user_file, device="cpu", engine=EngineOptions(precision="int8", cache_dir=cache)
    )
    assert low.scorer.precision == "int8"
    assert (low.score(images).exp() - fp32.probabilities(images)).abs().max() < 0.05
    assert [p.name for p in (cache / "onnx").glob("*.onnx")] == [int8.name]
    assert user_file.read_bytes() == original


def test_a_users_onnx_file_is_never_deleted(tmp_path: Path) -> None:
    """Not when it differs from the module it is checked against, nor when it is damaged."""
    user_file = export_onnx(seeded_linear(seed=1), tmp_path / "users.onnx")
    original = user_file.read_bytes()
    model = seeded_linear(seed=0)
    probes = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    target = Target(
        module=model,
        onnx_path=user_file,
        device=torch.device("cpu"),
        reference=lambda x: model(x).detach(),
        probabilities=lambda out: torch.softmax(out, dim=1),
        probes=probes,
        signature="users",
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(IdentikitError, match="differs from eager PyTorch") as error:
        tuning.choose(target, EngineOptions(backend="onnx", chunk_size=64))
    one_line_message(error)
    assert user_file.read_bytes() == original
    cut_short(user_file)
    damaged = user_file.read_bytes()
    with pytest.raises(IdentikitError, match=r"users\.onnx") as error:
        load_classifier(
            user_file,
            device="cpu",
            engine=EngineOptions(backend="onnx", cache_dir=tmp_path / "cache"),
        )
    one_line_message(error)
    assert user_file.read_bytes() == damaged
