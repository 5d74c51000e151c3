"""Low-precision scoring (bf16, int8): candidates ranked coarsely, confidences re-scored and
recorded in float32, and an ONNX file quantized once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier import Classifier, load_classifier
from identikit.engines.options import EngineOptions
from identikit.engines.precision import bf16_supported, ieee_fp32, tf32_in_use
from identikit.models.checkpoint import load_model
from identikit.models.export import export_model
from identikit.strategies import advance, initial_state, make_strategy
from identikit.strategies.base import RESCORED, target_scores
from identikit.strategies.stopping import Budget
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import sweep_to_folder
from tests.helpers import needs_cuda, run_cli, trained_like_cnn

pytestmark = pytest.mark.usefixtures("quick_measurements")


BF16 = pytest.mark.skipif(
    not bf16_supported(torch.device("cpu")), reason="this CPU has no bfloat16 instructions"
)


LOW_PRECISIONS = [
    pytest.param("bf16", marks=BF16),
    pytest.param("int8"),
]


@pytest.mark.parametrize("precision", LOW_PRECISIONS)
def test_low_precision_search_keeps_float32_confidences(precision: str, tmp_path: Path) -> None:
    model = trained_like_cnn()
    fp32 = Classifier(model)
    low = Classifier(model, engine=EngineOptions(precision=precision, cache_dir=tmp_path))
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
    low = Classifier(model, engine=EngineOptions(precision=precision, cache_dir=tmp_path))
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
        low = load_classifier(
            onnx, device="cpu", engine=EngineOptions(precision="int8", cache_dir=tmp_path / "c")
        )
        assert low.scorer.precision == "int8" and low.chunk_size == 512
        assert (low.score(images).exp() - fp32.probabilities(images)).abs().max() < 0.05
        assert torch.equal(low.log_probabilities(images), fp32.log_probabilities(images))
    assert len(list((tmp_path / "c" / "onnx").glob("*-int8.onnx"))) == 1


def test_fp32_on_a_gpu_is_ieee_float32_not_tf32() -> None:
    """PyTorch lets cuDNN's float32 convolutions run in TF32; a Classifier on a GPU turns that
    off, and says so. (The settings exist without a GPU: checked here on them.)"""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul  # type: ignore[attr-defined]
    before = conv.fp32_precision, matmul.fp32_precision
    try:
        conv.fp32_precision, matmul.fp32_precision = "tf32", "none"  # PyTorch's defaults
        cuda, cpu = torch.device("cuda"), torch.device("cpu")
        assert tf32_in_use(cuda) and not tf32_in_use(cpu)
        ieee_fp32(cpu)
        assert tf32_in_use(cuda)  # a CPU classifier leaves a GPU's settings alone
        ieee_fp32(cuda)
        assert not tf32_in_use(cuda)
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


@needs_cuda
def test_a_search_on_a_gpu_says_and_records_ieee_float32(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    proc = run_cli(
        *("search", "--model", str(tiny_model), "--out", str(out), "--digits", "0,1"),
        *("--runs", "2", "--max-queries", "2000", "--device", "cuda", "--no-progress"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "float32 as IEEE (no TF32)" in proc.stderr
    environment = json.loads((out / "results.json").read_text())["environment"]
    assert environment["device"].startswith("cuda") and environment["tf32"] is False
