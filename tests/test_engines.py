"""The engine options as one value, and the engines at the command line: unusable choices are
one-line errors, and ``identikit backends`` measures once and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines import tuning
from identikit.engines.chunks import fit_chunks
from identikit.engines.options import EngineOptions
from identikit.engines.precision import bf16_supported
from identikit.models import build_model
from tests.helpers import (
    DEVICES,
    assert_one_line_error,
    edit_cached_choices,
    needs_cuda,
    run_cli,
)

pytestmark = pytest.mark.usefixtures("quick_measurements")


def test_engine_options_default_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EngineOptions()
    assert (options.backend, options.precision, options.chunk_size) == (None, "fp32", None)
    assert not options.remeasure and options.log is None
    monkeypatch.setenv("IDENTIKIT_DATA", str(tmp_path))
    assert options.cache_folder == tmp_path / "backends"
    assert EngineOptions(cache_dir=tmp_path / "c").cache_folder == tmp_path / "c"
    with pytest.raises(IdentikitError, match="--backend must be auto or one of eager"):
        EngineOptions(backend="tensorrt")
    for chunk in (0, -3, 10**12, 2.5):
        with pytest.raises(IdentikitError, match="--chunk-size must be 1 to 1,048,576, got"):
            EngineOptions(chunk_size=chunk)  # type: ignore[arg-type]
    lines: list[str] = []
    EngineOptions(log=lines.append).tell("measured")
    EngineOptions().tell("nobody hears this")
    assert lines == ["measured"]
    # The log is not part of what the options ask for.
    assert EngineOptions(backend="auto", log=print) == EngineOptions(backend="auto")


def test_unusable_choices_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError, match="--backend must be"):
        Classifier(
            build_model("softmax"), engine=EngineOptions(backend="tensorrt", cache_dir=tmp_path)
        )
    with pytest.raises(IdentikitError, match="--precision must be"):
        Classifier(
            build_model("softmax"), engine=EngineOptions(precision="fp8", cache_dir=tmp_path)
        )


def test_unusable_engine_options_at_the_cli(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    search = ("search", "--model", str(tiny_model), "--out", str(out), "--runs", "1")
    assert_one_line_error(run_cli(*search, "--backend", "tensorrt"), "--backend")
    if bf16_supported(torch.device("cpu")):
        proc = run_cli(*search, "--device", "cpu", "--backend", "onnx", "--precision", "bf16")
        assert_one_line_error(proc, "--backend onnx", "fp32")
    onnx = tmp_path / "m.onnx"
    proc = run_cli("export", "--model", str(tiny_model), "--format", "onnx", "--out", str(onnx))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "search", "--model", str(onnx), "--out", str(tmp_path / "p"), "--precision", "bf16"
    )
    assert_one_line_error(proc, "--precision bf16", "fp32")
    assert not out.exists() and not (tmp_path / "p").exists()


@needs_cuda
def test_cpu_engines_on_a_gpu_are_clear_errors(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    search = ("search", "--model", str(tiny_model), "--out", str(out), "--device", "cuda")
    assert_one_line_error(run_cli(*search, "--backend", "onnx"), "--backend onnx", "CPU")
    proc = run_cli(*search, "--backend", "onnx", "--precision", "int8")
    assert_one_line_error(proc, "--precision int8", "--device cpu")
    assert not out.exists()


@pytest.mark.parametrize("device", DEVICES)
def test_backends_command_measures_once(device: str, tiny_model: Path, tmp_path: Path) -> None:
    env = {"IDENTIKIT_DATA": str(tmp_path / "data")}
    args = ["backends", "--model", str(tiny_model), "--backend", "channels_last", "--json"]
    args += ["--device", device]
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["backend"] == "channels_last" and record["how"] == "measured"
    tried = tuning.CUDA_CHUNKS if device == "cuda" else tuning.CPU_CHUNKS
    chunks = fit_chunks(tried, MNIST_SHAPE, torch.device(device))  # those the memory allows
    assert {f"channels_last@{c}" for c in chunks} <= set(record["rates"])
    assert record["chunk_size"] in chunks
    second = json.loads(run_cli(*args, env=env).stdout.strip().splitlines()[-1])
    assert second["how"] == "cached" and second["chunk_size"] == record["chunk_size"]
    third = json.loads(run_cli(*args, "--remeasure", env=env).stdout.strip().splitlines()[-1])
    assert third["how"] == "measured"


def test_backends_command_chooses_for_the_work_asked(tiny_model: Path, tmp_path: Path) -> None:
    """``--work``: the choice for a sweep of that many images; torch.compile is not measured
    for one too small for it to repay, and is for a larger one."""
    env = {"IDENTIKIT_DATA": str(tmp_path / "data")}
    args = ("backends", "--model", str(tiny_model), "--device", "cpu", "--json", "--work")
    small = json.loads(run_cli(*args, "1000", env=env).stdout.strip().splitlines()[-1])
    assert small["deferred"] == ["compile"]
    assert small["skipped"]["compile"].startswith("not measured: the work ahead (1,000 images)")
    large = run_cli(*args, str(10**10), env=env)
    assert large.returncode == 0, large.stderr
    record = json.loads(large.stdout.strip().splitlines()[-1])
    assert record["how"] == "measured" and record["deferred"] == []
    assert any(label.startswith("compile@") for label in record["rates"])
    assert_one_line_error(run_cli(*args, "0", env=env), "--work")


def test_backends_command_says_why_and_when(tiny_model: Path, tmp_path: Path) -> None:
    env = {"IDENTIKIT_DATA": str(tmp_path / "data")}
    args = ("backends", "--model", str(tiny_model), "--backend", "channels_last")
    assert run_cli(*args, env=env).returncode == 0
    cache = tmp_path / "data" / "backends"
    edit_cached_choices(cache, passed_over={"compile": "its 6.1 s compilation does not pay back"})
    proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "compile                      not chosen: its 6.1 s compilation" in proc.stdout
    chosen = proc.stdout.strip().splitlines()[-1]
    assert chosen.startswith("chosen: channels_last") and "not chosen: its 6.1 s" in chosen
    assert "cached; identikit backends --remeasure to measure again]" in chosen
    record = json.loads(run_cli(*args, "--json", env=env).stdout.strip().splitlines()[-1])
    assert record["passed_over"] == {"compile": "its 6.1 s compilation does not pay back"}
    assert "cache_dir" not in record and "cache_key" not in record
