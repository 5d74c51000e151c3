"""The automatic engine choice: measured once then read from the cache, torch.compile only where it
repays compiling (and why not, said), fallbacks without ONNX Runtime, choices made on a busy
machine measured again, and models no engine can run."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier import Classifier
from identikit.engines import choices, tuning
from identikit.engines.options import EngineOptions
from identikit.engines.target import Target
from identikit.models import build_model
from tests.helpers import channels_last_softmax, edit_cached_choices, one_line_message, toy_linear

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


def test_auto_measures_once_then_reads_the_cache(tmp_path: Path) -> None:
    lines: list[str] = []
    first = Classifier(
        build_model("softmax"),
        engine=EngineOptions(backend="auto", cache_dir=tmp_path, log=lines.append),
    )
    assert first.choice.how == "measured" and len(lines) == 1
    measured = {trial.backend for trial in first.choice.trials()}
    assert {"eager", "channels_last", "onnx"} <= measured
    best = max(rate for trial, rate in first.choice.trials().items() if trial.threads is None)
    assert first.choice.images_per_s is not None and first.choice.images_per_s >= 0.9 * best
    second = Classifier(
        build_model("softmax"),
        engine=EngineOptions(backend="auto", cache_dir=tmp_path, log=lines.append),
    )
    assert second.choice.how == "cached" and len(lines) == 1
    assert (second.choice.backend, second.choice.chunk_size) == (
        first.choice.backend,
        first.choice.chunk_size,
    )
    assert first.choice.backend in first.choice.summary()


M = tuning.REPAY_IMAGES  # a million images: the horizon where the caller does not say


def test_compile_is_chosen_only_where_it_repays_its_compilation() -> None:
    # Over a million images, 14,000 against 12,000 images/s saves 11.9 s.
    rates = {"channels_last@256": 12_000.0, "compile@256": 14_000.0, "onnx@128": 7_000.0}
    assert tuning._fastest(rates, compile_seconds=4.0, horizon=M) == "compile@256"
    assert tuning._fastest(rates, compile_seconds=15.0, horizon=M) == "channels_last@256"
    # A model scored at millions of images a second never repays seconds of compiling.
    fast = {"eager@512": 1.5e6, "compile@512": 2.5e6}
    assert tuning._fastest(fast, compile_seconds=2.0, horizon=M) == "eager@512"
    assert tuning._fastest({"compile@64": 10.0}, compile_seconds=60.0, horizon=M) == "compile@64"
    slower = {"onnx@128": 7_000.0, "compile@256": 6_900.0}
    assert tuning._fastest(slower, compile_seconds=0, horizon=M) == "onnx@128"
    # The work ahead decides: a sweep of 20 million images repays 15 s of compiling.
    assert tuning._fastest(rates, compile_seconds=15.0, horizon=20 * M) == "compile@256"
    assert tuning._fastest(rates, compile_seconds=4.0, horizon=M // 10) == "channels_last@256"


def test_a_cached_choice_is_decided_again_for_the_work_ahead() -> None:
    """The rates a choice records decide it again for each sweep's budget, measuring nothing:
    compile for a long sweep, the runner-up for a short one (said why), at its own chunk."""
    cached = choices.Choice(
        "onnx", "fp32", 512, 1, 70_120, {**RATES, "compile-start-s": 6.1, "onnx@512x1threads": 71e3}
    )
    assert tuning.for_work(cached, None) is cached
    same = tuning.for_work(cached, M)
    assert (same.backend, same.threads) == ("onnx", 1)  # the cached decision stands
    long = tuning.for_work(cached, 100 * M)
    assert (long.backend, long.chunk_size, long.images_per_s) == ("compile", 256, 94_300)
    assert long.passed_over == {}
    back = tuning.for_work(long, M)
    assert (back.backend, back.chunk_size) == ("onnx", 512)
    assert "does not pay back within 1,000,000 images" in back.passed_over["compile"]


# A choice as _measure makes it where torch.compile is fastest but does not repay compiling.
RATES = {"onnx@512": 70_120.0, "eager@256": 50_000.0, "compile@256": 94_300.0}


def test_compile_passed_over_says_why() -> None:
    best = tuning._fastest(RATES, compile_seconds=6.1, horizon=M)
    assert best == "onnx@512"
    passed = tuning._passed_over(RATES, best, compile_seconds=6.1, horizon=M)
    assert passed["compile"] == (
        "its 6.1 s compilation does not pay back within 1,000,000 images (it would save 3.7 s)"
    )
    choice = choices.Choice(
        "onnx", "fp32", 512, 2, 70_120, {**RATES, "compile-start-s": 6.1}, passed_over=passed
    )
    line = choice.summary()
    assert "; compile 94,300 images/s not chosen: its 6.1 s compilation" in line
    assert "eager 50,000" in line and "compile 94,300;" not in line  # listed once, with why
    # The fastest won, or compile won: nothing was passed over.
    assert tuning._passed_over(RATES, "compile@256", compile_seconds=1.0, horizon=M) == {}
    assert (
        tuning._passed_over(
            {"onnx@512": 2.0, "eager@64": 1.0}, "onnx@512", compile_seconds=0, horizon=M
        )
        == {}
    )


def test_auto_without_onnxruntime_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "available_backends", _no_compile(tuning.available_backends))
    cache = tmp_path / "cache"
    # a cached choice of ONNX Runtime, made while it was installed ...
    model = build_model("softmax")
    onnx_first = Classifier(model, engine=EngineOptions(backend="onnx", cache_dir=cache))
    assert onnx_first.choice.backend == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # ... and now it is not
    classifier = Classifier(model, engine=EngineOptions(backend="auto", cache_dir=cache))
    assert classifier.choice.backend in ("eager", "channels_last")
    assert classifier.choice.skipped["onnx"] == "onnxruntime is not installed"
    images = torch.rand(10, 1, 28, 28)
    assert torch.allclose(
        classifier.probabilities(images), onnx_first.probabilities(images), atol=1e-5
    )
    with pytest.raises(IdentikitError, match="onnxruntime is not installed"):
        Classifier(
            build_model("softmax"),
            engine=EngineOptions(backend="onnx", cache_dir=tmp_path / "other"),
        )
    # a cached onnx choice that can no longer be built is measured again, not an error
    entries = choices.read_choices(cache)
    for record in entries.values():
        record["backend"] = "onnx"
    choices.save_choices(cache, entries)
    again = Classifier(
        build_model("softmax"), engine=EngineOptions(backend="auto", cache_dir=cache)
    )
    assert again.choice.backend != "onnx" and again.choice.how == "measured"


Available = Callable[[Target, str], tuple[list[str], dict[str, str]]]


def _no_compile(available: Available) -> Available:
    """Leave torch.compile out (its compilation takes seconds; its own test covers it)."""

    def wrapped(target: Target, precision: str) -> tuple[list[str], dict[str, str]]:
        names, skipped = available(target, precision)
        return [n for n in names if n != "compile"], skipped

    return wrapped


def test_a_corrupt_cache_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "available_backends", _no_compile(tuning.available_backends))
    tmp_path.joinpath(choices.CACHE_FILE).write_text("{not json")
    classifier = Classifier(
        build_model("softmax"), engine=EngineOptions(backend="auto", cache_dir=tmp_path)
    )
    assert classifier.choice.how == "measured"
    assert choices.read_choices(tmp_path)


def test_a_choice_measured_on_a_busy_machine_is_measured_again(tmp_path: Path) -> None:
    channels_last_softmax(tmp_path)
    choice = channels_last_softmax(tmp_path).choice
    recorded = choice.images_per_s
    assert choice.how == "cached" and recorded
    lines: list[str] = []
    # Not enough to tell: a short sweep, or a rate the recorded one explains.
    assert not tuning.note_achieved_rate(choice, 3 * recorded, seconds=2.0, log=lines.append)
    assert not tuning.note_achieved_rate(choice, 1.4 * recorded, seconds=60, log=lines.append)
    assert not tuning.note_achieved_rate(choice, None, seconds=60, log=lines.append)
    given = Classifier(
        build_model("softmax"),
        engine=EngineOptions(backend="eager", chunk_size=64, cache_dir=tmp_path),
    )
    assert not tuning.note_achieved_rate(given.choice, 1e12, seconds=60)  # never cached
    assert lines == [] and channels_last_softmax(tmp_path).choice.how == "cached"
    # Far above it: the entry is dropped, the user told in one line, and measured next time.
    assert tuning.note_achieved_rate(choice, 2 * recorded, seconds=60, log=lines.append)
    assert len(lines) == 1 and "measured again" in lines[0] and "\n" not in lines[0]
    assert json.loads((tmp_path / choices.CACHE_FILE).read_text()) == {"version": 2, "choices": {}}
    assert channels_last_softmax(tmp_path).choice.how == "measured"


def test_a_newer_measurement_is_not_dropped(tmp_path: Path) -> None:
    channels_last_softmax(tmp_path)
    old = channels_last_softmax(tmp_path).choice
    assert old.images_per_s
    edit_cached_choices(tmp_path, measured="2099-01-01 00:00 UTC")  # another process measured since
    assert not tuning.note_achieved_rate(old, 10 * old.images_per_s, seconds=60)
    assert channels_last_softmax(tmp_path).choice.how == "cached"


def test_compile_is_not_measured_for_work_it_could_not_repay(tmp_path: Path) -> None:
    """A sweep too small for any compilation to repay leaves torch.compile unmeasured, and
    says so; a larger one measures it."""
    target = cpu_target(toy_linear(), "toy", tmp_path)
    small = EngineOptions(backend="auto", work=1_000, cache_dir=tmp_path)
    choice = tuning.choose(target, small)[1]
    assert choice.how == "measured" and choice.deferred == ["compile"]
    assert "compile" not in {trial.backend for trial in choice.trials()}
    assert choice.skipped["compile"].startswith("not measured: the work ahead (1,000 images)")
    assert "not used: compile (not measured" in choice.summary()
    again = tuning.choose(target, small)[1]
    assert again.how == "cached" and again.deferred == ["compile"]
    # Work that a compilation could repay measures it, once; unknown work is REPAY_IMAGES.
    fastest = again.images_per_s
    assert fastest and not tuning._deferred_would_repay(again, 1_000)
    worth = int(fastest * tuning.COMPILE_WORTH_SECONDS) + 1
    assert tuning._deferred_would_repay(again, worth)
    assert tuning._deferred_would_repay(again, None) == (worth <= tuning.REPAY_IMAGES)
    full = tuning.choose(target, dataclasses.replace(small, work=100 * worth))[1]
    assert full.how == "measured" and full.deferred == [] and "compile" not in full.skipped
    assert "compile" in {trial.backend for trial in full.trials()}
    assert tuning.choose(target, small)[1].how == "cached"
    # A hand-edited list naming no engine of this request is measured again, never trusted.
    edit_cached_choices(tmp_path, deferred=["tensorrt"])
    assert tuning.choose(target, small)[1].how == "measured"


class NotANumber(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 10), float("nan"))


def cpu_target(model: nn.Module, signature: str, cache: Path) -> Target:
    """``model`` as the tuner sees it on the CPU, checked on 8 random probes."""
    return Target(
        module=model,
        onnx_path=None,
        device=torch.device("cpu"),
        reference=model,
        probabilities=lambda out: torch.softmax(out, dim=1),
        probes=torch.rand(8, 1, 28, 28),
        signature=signature,
        cache_dir=cache,
    )


def nan_target(tmp_path: Path, name: str | None = None) -> Target:
    target = cpu_target(NotANumber(), "nan", tmp_path)
    return target if name is None else dataclasses.replace(target, name=name)


def test_when_no_engine_can_run_a_model_the_message_names_it(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError) as error:
        tuning.choose(nan_target(tmp_path, name="nan.pt"), EngineOptions(backend="eager"))
    assert one_line_message(error) == (
        "no scoring engine can run nan.pt: eager: returns NaN or infinite outputs"
    )
    with pytest.raises(IdentikitError, match="no scoring engine can run the model: eager"):
        tuning.choose(nan_target(tmp_path), EngineOptions(backend="eager"))


class BatchDependent(nn.Module):
    """A model whose outputs for an image move with the size of its batch, as a GPU's kernels
    chosen per batch size can make them move (by much less)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.flatten(1)[:, :10] * 4
        shift = torch.zeros(10)
        shift[0] = 1e-2 * (x.shape[0] % 5)  # one class only: softmax ignores a common shift
        return logits + shift


def test_an_engine_is_held_no_closer_to_eager_than_eager_is_to_itself(tmp_path: Path) -> None:
    steady = cpu_target(toy_linear(), "steady", tmp_path)
    assert tuning.tolerance(steady) == tuning.TOLERANCE
    moving = BatchDependent()
    loose = dataclasses.replace(steady, module=moving, reference=moving, signature="moving")
    allowed = tuning.tolerance(loose)
    assert tuning.TOLERANCE < allowed < 0.1
    # Eager itself, scored at another chunk size, passes the check that uses that tolerance.
    scorer = tuning.choose(loose, EngineOptions(backend="eager", chunk_size=4))[0]
    assert scorer.chunk_size == 4
