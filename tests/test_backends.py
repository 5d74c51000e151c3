"""Scoring backends: each one equals eager PyTorch, the automatic choice, its cache and fallbacks,
and low-precision (bf16, int8) scoring with float32 re-scoring."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier, load_classifier
from identikit.data import datasets as data
from identikit.engines import tuning
from identikit.engines.precision import bf16_supported
from identikit.models import build_model
from identikit.models.checkpoint import load_model
from identikit.models.export import export_model
from identikit.models.preprocessing import Preprocessing
from identikit.strategies import advance, initial_state, make_strategy
from identikit.strategies.base import RESCORED, target_scores
from identikit.strategies.stopping import Budget
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import sweep_to_folder
from tests.helpers import assert_one_line_error, run_cli

BF16 = pytest.mark.skipif(
    not bf16_supported(torch.device("cpu")), reason="this CPU has no bfloat16 instructions"
)


@pytest.fixture(autouse=True)
def quick_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter timings: these tests check what is chosen and how, not the speeds."""
    monkeypatch.setattr(tuning, "MEASURE_SECONDS", 0.02)
    monkeypatch.setattr(tuning, "ROUNDS", 1)


def trained_like_cnn(seed: int = 0) -> torch.nn.Module:
    """The tutorial CNN with random weights scaled up so that its outputs are confident."""
    torch.manual_seed(seed)
    model = build_model("cnn")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return model.eval()


@pytest.fixture(scope="module")
def real_and_random() -> torch.Tensor:
    """300 MNIST test digits and 100 uniform-noise images, as pixels in [0, 1]."""
    images, _ = data.load_dataset("mnist", "test")
    real = torch.from_numpy(images[:300].astype(np.float32) / 255.0).unsqueeze(1)
    noise = torch.rand(100, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return torch.cat([real, noise])


@pytest.mark.parametrize("backend", ["eager", "channels_last", "compile", "onnx"])
def test_every_backend_gives_eager_probabilities(
    backend: str, real_and_random: torch.Tensor, tmp_path: Path
) -> None:
    model = trained_like_cnn()
    with torch.inference_mode():
        eager = torch.softmax(model(real_and_random), dim=1)
    classifier = Classifier(model, backend=backend, chunk_size=64, cache_dir=tmp_path)
    assert classifier.choice.backend == backend and classifier.choice.how == "given"
    assert classifier.scorer.backend == backend
    probabilities = classifier.probabilities(real_and_random)
    assert (probabilities - eager).abs().max().item() <= 1e-5
    # the model is confident on some images and not on others: the comparison means something
    assert probabilities.max(1).values.max() > 0.99 and probabilities.max(1).values.min() < 0.9


@pytest.mark.parametrize("backend", ["eager", "channels_last", "onnx"])
def test_torchscript_backends_with_preprocessing(
    backend: str, real_and_random: torch.Tensor, tmp_path: Path
) -> None:
    """A TorchScript model that expects normalised inputs, under every engine that takes it."""
    model = trained_like_cnn(1)
    preprocessing = Preprocessing(input_range="-1,1", mean=0.1, std=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(model, torch.rand(2, 1, 28, 28))  # type: ignore[no-untyped-call]
    path = tmp_path / "model.ts"
    torch.jit.save(scripted, str(path))
    with torch.inference_mode():
        eager = torch.softmax(model(preprocessing.to_model(real_and_random)), dim=1)
    classifier = load_classifier(
        path,
        device="cpu",
        preprocessing=preprocessing,
        backend=backend,
        chunk_size=100,
        trust_code=True,
    )
    assert (classifier.probabilities(real_and_random) - eager).abs().max().item() <= 1e-5


def test_onnx_export_is_cached_by_weights(tmp_path: Path) -> None:
    Classifier(trained_like_cnn(0), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    Classifier(trained_like_cnn(0), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    Classifier(trained_like_cnn(1), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


def test_a_bad_cached_export_is_refused_and_redone(tmp_path: Path) -> None:
    """An export that does not match the model (here: another model's) is never used: it is
    exported again, in the same call."""
    Classifier(trained_like_cnn(0), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    (first,) = (tmp_path / "onnx").glob("*.onnx")
    Classifier(trained_like_cnn(1), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    (second,) = set((tmp_path / "onnx").glob("*.onnx")) - {first}
    second.write_bytes(first.read_bytes())
    redone = Classifier(trained_like_cnn(1), backend="onnx", chunk_size=64, cache_dir=tmp_path)
    assert redone.choice.backend == "onnx"
    assert second.read_bytes() != first.read_bytes()


def test_auto_measures_once_then_reads_the_cache(tmp_path: Path) -> None:
    lines: list[str] = []
    first = Classifier(build_model("softmax"), backend="auto", cache_dir=tmp_path, log=lines.append)
    assert first.choice.how == "measured" and len(lines) == 1
    measured = {label.split("@")[0] for label in first.choice.rates if "@" in label}
    assert {"eager", "channels_last", "onnx"} <= measured
    best = max((r, k) for k, r in first.choice.rates.items() if "@" in k and "threads" not in k)
    assert first.choice.images_per_s is not None and first.choice.images_per_s >= 0.9 * best[0]
    second = Classifier(
        build_model("softmax"), backend="auto", cache_dir=tmp_path, log=lines.append
    )
    assert second.choice.how == "cached" and len(lines) == 1
    assert (second.choice.backend, second.choice.chunk_size) == (
        first.choice.backend,
        first.choice.chunk_size,
    )
    assert first.choice.backend in first.choice.summary()


def test_compile_is_chosen_only_where_it_repays_its_compilation() -> None:
    # Over a million images, 14,000 against 12,000 images/s saves 11.9 s.
    rates = {"channels_last@256": 12_000.0, "compile@256": 14_000.0, "onnx@128": 7_000.0}
    assert tuning._fastest(rates, compile_seconds=4.0) == "compile@256"
    assert tuning._fastest(rates, compile_seconds=15.0) == "channels_last@256"
    # A model scored at millions of images a second never repays seconds of compiling.
    fast = {"eager@512": 1.5e6, "compile@512": 2.5e6}
    assert tuning._fastest(fast, compile_seconds=2.0) == "eager@512"
    assert tuning._fastest({"compile@64": 10.0}, compile_seconds=60.0) == "compile@64"
    assert tuning._fastest({"onnx@128": 7_000.0, "compile@256": 6_900.0}, compile_seconds=0) == (
        "onnx@128"
    )


def test_auto_without_onnxruntime_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "available_backends", _no_compile(tuning.available_backends))
    cache = tmp_path / "cache"
    # a cached choice of ONNX Runtime, made while it was installed ...
    model = build_model("softmax")
    onnx_first = Classifier(model, backend="onnx", cache_dir=cache)
    assert onnx_first.choice.backend == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # ... and now it is not
    classifier = Classifier(model, backend="auto", cache_dir=cache)
    assert classifier.choice.backend in ("eager", "channels_last")
    assert classifier.choice.skipped["onnx"] == "onnxruntime is not installed"
    images = torch.rand(10, 1, 28, 28)
    assert torch.allclose(
        classifier.probabilities(images), onnx_first.probabilities(images), atol=1e-5
    )
    with pytest.raises(IdentikitError, match="onnxruntime is not installed"):
        Classifier(build_model("softmax"), backend="onnx", cache_dir=tmp_path / "other")
    # a cached onnx choice that can no longer be built is measured again, not an error
    key_file = cache / tuning.CACHE_FILE
    entries = json.loads(key_file.read_text())
    for record in entries.values():
        record["backend"] = "onnx"
    key_file.write_text(json.dumps(entries))
    again = Classifier(build_model("softmax"), backend="auto", cache_dir=cache)
    assert again.choice.backend != "onnx" and again.choice.how == "measured"


Available = Callable[[tuning.Target, str], tuple[list[str], dict[str, str]]]


def _no_compile(available: Available) -> Available:
    """Leave torch.compile out (its compilation takes seconds; its own test covers it)."""

    def wrapped(target: tuning.Target, precision: str) -> tuple[list[str], dict[str, str]]:
        names, skipped = available(target, precision)
        return [n for n in names if n != "compile"], skipped

    return wrapped


def test_unusable_choices_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError, match="--backend must be"):
        Classifier(build_model("softmax"), backend="tensorrt", cache_dir=tmp_path)
    with pytest.raises(IdentikitError, match="--precision must be"):
        Classifier(build_model("softmax"), precision="fp8", cache_dir=tmp_path)


def test_a_corrupt_cache_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "available_backends", _no_compile(tuning.available_backends))
    tmp_path.joinpath(tuning.CACHE_FILE).write_text("{not json")
    classifier = Classifier(build_model("softmax"), backend="auto", cache_dir=tmp_path)
    assert classifier.choice.how == "measured"
    assert json.loads(tmp_path.joinpath(tuning.CACHE_FILE).read_text())


LOW_PRECISIONS = [
    pytest.param("bf16", marks=BF16),
    pytest.param("int8"),
]


@pytest.mark.parametrize("precision", LOW_PRECISIONS)
def test_low_precision_search_keeps_float32_confidences(precision: str, tmp_path: Path) -> None:
    model = trained_like_cnn()
    fp32 = Classifier(model)
    low = Classifier(model, precision=precision, cache_dir=tmp_path)
    assert low.rescores and low.scorer.precision == precision
    strategy = make_strategy("random-masks", candidates=100)
    targets, seeds = [0, 3, 7, 9], [1, 2, 3, 4]
    state = initial_state(low, targets, seeds)
    advance(state, strategy, low, [Budget(100_000)], max_iterations=5)
    exact = target_scores(fp32, state.images, state.targets)
    coarse = low.score(state.images).gather(1, state.targets.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(state.scores, exact, rtol=0, atol=1e-6)
    assert not torch.allclose(state.scores, coarse, rtol=0, atol=1e-6)  # low precision differs
    # 100 candidates and the re-scoring of the best 8 per step
    assert (state.queries == 1 + 5 * (100 + RESCORED)).all()
    assert all(
        h[-1] == pytest.approx(c) for h, c in zip(state.history, exact.exp().tolist(), strict=True)
    )
    assert (state.scores > target_scores(fp32, torch.zeros(4, 1, 28, 28), state.targets)).all()


@pytest.mark.parametrize("precision", LOW_PRECISIONS)
def test_low_precision_sweep_records_float32_confidences(precision: str, tmp_path: Path) -> None:
    model = trained_like_cnn()
    low = Classifier(model, precision=precision, cache_dir=tmp_path)
    config = SweepConfig(digits=(1, 8), runs=2, max_queries=3_000, strategy="random-masks")
    outcome = sweep_to_folder(low, config, tmp_path / "sweep")
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert (
        results["scoring"]["precision"] == precision
        and results["queries_per_step"] == 500 + RESCORED
    )
    images = torch.from_numpy(np.load(tmp_path / "sweep" / "identikits.npz")["images"])
    exact = Classifier(model).probabilities(images.unsqueeze(1))
    digits = [r["digit"] for r in results["runs"]]
    recorded = torch.tensor([r["confidence"] for r in results["runs"]])
    torch.testing.assert_close(recorded, exact[range(len(digits)), digits], rtol=0, atol=1e-6)
    assert outcome.results is not None
    # a low-precision search and an fp32 one are two searches: resuming one as the other is
    # refused, naming the difference
    with pytest.raises(IdentikitError, match=f"--precision: {precision} -> fp32"):
        sweep_to_folder(Classifier(model), config, tmp_path / "sweep")


def test_int8_of_an_onnx_file_is_quantized_once(tiny_model: Path, tmp_path: Path) -> None:
    """A user's ONNX file (here fixed to batch 1 and flattened) is quantized as it is."""
    onnx = tmp_path / "m.onnx"
    export_model(load_model(tiny_model), onnx, fmt="onnx", flatten=True, fixed_batch=True)
    fp32 = load_classifier(onnx, device="cpu")
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    for _ in range(2):
        low = load_classifier(onnx, device="cpu", precision="int8", cache_dir=tmp_path / "c")
        assert low.scorer.precision == "int8" and low.chunk_size == 512
        assert (low.score(images).exp() - fp32.probabilities(images)).abs().max() < 0.05
        assert torch.equal(low.log_probabilities(images), fp32.log_probabilities(images))
    assert len(list((tmp_path / "c" / "onnx").glob("*-int8.onnx"))) == 1


def test_backends_command_measures_once(tiny_model: Path, tmp_path: Path) -> None:
    env = {"IDENTIKIT_DATA": str(tmp_path / "data")}
    args = ("backends", "--model", str(tiny_model), "--backend", "channels_last", "--json")
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["backend"] == "channels_last" and record["how"] == "measured"
    assert {f"channels_last@{c}" for c in tuning.CPU_CHUNKS} <= set(record["rates"])
    assert record["chunk_size"] in tuning.CPU_CHUNKS
    second = json.loads(run_cli(*args, env=env).stdout.strip().splitlines()[-1])
    assert second["how"] == "cached" and second["chunk_size"] == record["chunk_size"]
    third = json.loads(run_cli(*args, "--remeasure", env=env).stdout.strip().splitlines()[-1])
    assert third["how"] == "measured"


def test_unusable_engine_options_at_the_cli(tiny_model: Path, tmp_path: Path) -> None:
    search = ("search", "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--runs", "1")
    assert_one_line_error(run_cli(*search, "--backend", "tensorrt"), "--backend")
    if bf16_supported(torch.device("cpu")):
        proc = run_cli(*search, "--backend", "onnx", "--precision", "bf16")
        assert_one_line_error(proc, "--backend onnx", "fp32")
    onnx = tmp_path / "m.onnx"
    proc = run_cli("export", "--model", str(tiny_model), "--format", "onnx", "--out", str(onnx))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "search", "--model", str(onnx), "--out", str(tmp_path / "p"), "--precision", "bf16"
    )
    assert_one_line_error(proc, "--precision bf16", "fp32")
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()
