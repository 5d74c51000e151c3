"""The engine registry: the built-in engines in the order ``auto`` measures them, every engine
saying why where it cannot run, and an engine registered by a test of its own measured, chosen
and checked against eager PyTorch like the built-in ones."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines import BACKENDS, tuning
from identikit.engines.options import EngineOptions
from identikit.engines.registry import (
    Build,
    Engine,
    engine_names,
    get_engine,
    register,
    unregister,
)
from identikit.engines.scorers import Scorer
from identikit.engines.target import Target
from identikit.engines.torch_engines import TorchRecipe, torch_engine, torch_why_not
from tests.helpers import one_line_message, seeded_linear

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")

BUILT_IN = ("eager", "channels_last", "compile", "onnx")


def linear_target(cache: Path, *, device: str = "cpu", onnx_file: bool = False) -> Target:
    """A linear model as the tuner sees it (as an ONNX file at ``cache``, for ``onnx_file``:
    no engine here reads it)."""
    model = seeded_linear()
    probes = torch.rand(MNIST_SHAPE.batch(16), generator=torch.Generator().manual_seed(0))
    return Target(
        module=None if onnx_file else model,
        onnx_path=cache / "model.onnx" if onnx_file else None,
        device=torch.device(device),
        reference=lambda x: model(x).detach(),
        probabilities=lambda out: torch.softmax(out, dim=1),
        probes=probes,
        signature="linear",
        cache_dir=cache,
    )


def test_the_built_in_engines_in_the_order_auto_measures_them() -> None:
    assert BACKENDS == BUILT_IN
    assert engine_names()[: len(BUILT_IN)] == BUILT_IN
    with pytest.raises(IdentikitError) as error:
        EngineOptions(backend="fastest")
    assert one_line_message(error) == (
        "--backend must be auto or one of eager, channels_last, compile, onnx"
    )


@pytest.mark.parametrize("name", engine_names())
def test_an_engine_that_cannot_run_says_why(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over models, devices, precisions and compilers: each registered engine is a candidate or
    has a one-line reason, and some situation refuses it."""
    refused = []
    for onnx_file, device, precision, compiler in itertools.product(
        (False, True), ("cpu", "cuda"), ("fp32", "bf16", "int8"), ("cc", "no-such-compiler")
    ):
        monkeypatch.setenv("CC", compiler)
        target = linear_target(tmp_path, device=device, onnx_file=onnx_file)
        names, skipped = tuning.available_backends(target, precision)
        assert sorted([*names, *skipped]) == sorted(engine_names())
        if name in skipped:
            assert skipped[name].strip() and "\n" not in skipped[name]
            refused.append(skipped[name])
    assert refused


def test_int8_off_the_cpu_is_refused_in_one_reason(tmp_path: Path) -> None:
    target = linear_target(tmp_path, device="cuda")
    with pytest.raises(IdentikitError) as error:
        tuning.choose(target, EngineOptions(backend="auto", precision="int8"))
    assert (
        one_line_message(error) == "--precision int8: int8 scoring runs on ONNX Runtime, on the CPU"
    )


def test_an_engine_cannot_take_a_name_twice_nor_auto() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(get_engine("eager"))
    with pytest.raises(ValueError, match="auto"):
        register(torch_engine(TorchRecipe("auto", torch.contiguous_format)))


@pytest.fixture
def twin() -> Iterator[Engine]:
    """Eager PyTorch under another name, made as a new PyTorch engine is: one recipe."""
    engine = register(torch_engine(TorchRecipe("twin", torch.contiguous_format)))
    yield engine
    unregister(engine.name)


def _skewed(spec: Build) -> Scorer:
    """An engine that gets the model wrong: class 0's logit one too high."""
    module = spec.target.module
    assert module is not None

    @torch.inference_mode()
    def run(inputs: torch.Tensor) -> torch.Tensor:
        outputs: torch.Tensor = module(inputs).float()
        return outputs + torch.eye(outputs.shape[1])[0]

    return Scorer("skewed", spec.precision, spec.chunk_size, spec.threads, run)


@pytest.fixture
def skewed() -> Iterator[Engine]:
    engine = register(Engine("skewed", torch_why_not, _skewed))
    yield engine
    unregister(engine.name)


@pytest.fixture
def no_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """torch.compile left out, as on a CPU without a C compiler (its compilation takes
    seconds; its own tests cover it)."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))


@pytest.mark.usefixtures("no_compiler")
def test_a_registered_engine_is_measured_by_auto(twin: Engine, tmp_path: Path) -> None:
    lines: list[str] = []
    options = EngineOptions(backend="auto", cache_dir=tmp_path, log=lines.append)
    scorer, choice = tuning.choose(linear_target(tmp_path), options)
    assert lines == [
        "measuring scoring engines (eager, channels_last, onnx, twin) for this machine "
        "and model, once"
    ]
    assert choice.how == "measured" and choice.skipped == {
        "compile": "torch.compile needs a C compiler on CPUs"
    }
    # Measured in the registry's order, the new engine last, at every chunk size.
    first_seen = list(dict.fromkeys(trial.backend for trial in choice.trials()))
    assert first_seen[:4] == ["eager", "channels_last", "onnx", "twin"]
    assert {f"twin@{chunk}" for chunk in tuning.CPU_CHUNKS} <= set(choice.rates)
    assert scorer.backend == choice.backend
    # Read from the cache next time, its key naming the new engine among the candidates.
    _, cached = tuning.choose(linear_target(tmp_path), options)
    assert cached.how == "cached" and cached.backend == choice.backend


def test_a_registered_engine_is_chosen_by_name_and_matches_eager(
    twin: Engine, tmp_path: Path
) -> None:
    target = linear_target(tmp_path)
    given = EngineOptions(backend="twin", chunk_size=5, cache_dir=tmp_path)
    scorer, choice = tuning.choose(target, given)
    assert (scorer.backend, choice.backend, choice.how, scorer.chunk_size) == (
        "twin",
        "twin",
        "given",
        5,
    )
    images = torch.rand(MNIST_SHAPE.batch(12), generator=torch.Generator().manual_seed(1))
    gap = target.probabilities(scorer(images)) - target.probabilities(target.reference(images))
    assert gap.abs().max().item() <= tuning.TOLERANCE
    _, measured = tuning.choose(target, EngineOptions(backend="twin", cache_dir=tmp_path))
    assert measured.how == "measured" and measured.chunk_size in tuning.CPU_CHUNKS


@pytest.mark.usefixtures("no_compiler")
def test_a_wrong_engine_is_refused_by_the_check(skewed: Engine, tmp_path: Path) -> None:
    target = linear_target(tmp_path)
    scorer, choice = tuning.choose(target, EngineOptions(backend="auto", cache_dir=tmp_path))
    assert choice.backend != "skewed" and scorer.backend != "skewed"
    assert choice.skipped["skewed"].startswith("differs from eager PyTorch by ")
    assert "skewed" not in {trial.backend for trial in choice.trials()}
    with pytest.raises(IdentikitError) as error:
        tuning.choose(target, EngineOptions(backend="skewed", cache_dir=tmp_path))
    assert one_line_message(error).startswith(
        "no scoring engine can run the model: skewed: differs from eager PyTorch by "
    )


def test_options_name_the_engines_registered_now(twin: Engine) -> None:
    assert EngineOptions(backend="twin").backend == "twin"
    with pytest.raises(IdentikitError, match=r"compile, onnx, twin$"):
        EngineOptions(backend="triplet")
