"""ONNX models whose outputs are not (N, classes) are refused in one line, in the library and at the
command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier import load_classifier
from tests.helpers import export_onnx, one_line_message

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


class Reshaped(nn.Module):
    """A linear model whose (N, 10) outputs come back reshaped by ``how``."""

    def __init__(self, how: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.how(self.linear(x.flatten(1)))


def with_a_dimension(out: torch.Tensor) -> torch.Tensor:
    return out.unsqueeze(-1)


def flattened(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(-1)


@pytest.mark.parametrize(("how", "shape"), [(with_a_dimension, "(4, 10, 1)"), (flattened, "(40)")])
def test_onnx_outputs_of_another_rank_are_refused(
    how: Callable[[torch.Tensor], torch.Tensor], shape: str, tmp_path: Path
) -> None:
    path = export_onnx(Reshaped(how), tmp_path / "model.onnx")
    with pytest.raises(IdentikitError) as error:
        load_classifier(path, device="cpu")
    assert one_line_message(error) == (
        f"model.onnx: output 'output' has shape {shape}; expected (N, classes)"
    )


def test_onnx_outputs_of_another_rank_at_the_command_line(tmp_path: Path) -> None:
    path = export_onnx(Reshaped(with_a_dimension), tmp_path / "model.onnx")
    args = ("search", "--model", str(path), "--out", str(tmp_path / "out"), "--runs", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "IDENTIKIT_DATA": str(tmp_path / "data")},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "model.onnx: output 'output' has shape (4, 10, 1); expected (N, classes)" in last
