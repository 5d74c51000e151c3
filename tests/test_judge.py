"""Judging identikits: transfer to independent models and nearest real digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.studies.judge import load_sweep, nearest_neighbours, transfer
from tests.helpers import assert_one_line_error, make_digits, run_cli


def test_nearest_neighbours_of_real_digits_are_themselves() -> None:
    train_x, train_y = make_digits(300)
    images = train_x[:20].astype(np.float32) / 255
    found = nearest_neighbours(images, train_y[:20].astype(np.int64), train_x, train_y)
    assert found["share"] == 1.0
    assert max(found["distance_own_class"]) < 1e-2
    assert min(found["distance_other_classes"]) > 1.0
    wrong = nearest_neighbours(images, (train_y[:20].astype(np.int64) + 1) % 10, train_x, train_y)
    assert wrong["share"] == 0.0


class AlwaysThree(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 10) + 0 * x.flatten(1)[:, :1]
        logits[:, 3] = 5.0
        return logits


def test_transfer_matrix() -> None:
    digits = np.array([3, 3, 1, 7])
    verdict = transfer(Classifier(AlwaysThree()), np.zeros((4, 28, 28), np.float32), digits)
    assert verdict["agreement"] == 0.5
    matrix = np.array(verdict["matrix"])
    assert matrix[:, 3].sum() == 4 and matrix[3, 3] == 2 and matrix[1, 3] == 1


def test_missing_sweep_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError, match="no finished sweep"):
        load_sweep(tmp_path)
    assert_one_line_error(
        run_cli("judge", str(tmp_path), "--judges", "softmax"), "no finished sweep"
    )


@pytest.mark.mnist
def test_judge_cli_on_real_mnist(mnist_root: Path, mnist_softmax: Path, tmp_path: Path) -> None:
    model = mnist_softmax
    sweep = tmp_path / "sweep"
    assert (
        run_cli(
            "search",
            "--model",
            str(model),
            "--out",
            str(sweep),
            "--runs",
            "2",
            "--strategy",
            "square",
            "--max-queries",
            "500",
            "--no-progress",
        ).returncode
        == 0
    )
    proc = run_cli(
        "judge",
        str(sweep),
        "--judges",
        "softmax",
        "--root",
        str(mnist_root),
        "--cache",
        str(tmp_path / "judges"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["identikits"] == 20
    assert 0 <= verdict["judges"]["softmax"] <= 1 and 0 <= verdict["nearest_neighbour"] <= 1
    assert (tmp_path / "judges" / "mnist-softmax-seed1.pt").is_file()  # cached for next time
    full = json.loads((sweep / "judge.json").read_text())
    assert np.array(full["transfer_matrices"]["softmax"]).sum() == 20
