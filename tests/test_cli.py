"""The command line as a user meets it: one-line errors, exit 2, JSON output, real training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_one_line_error, run_cli, write_idx_folder


def test_unknown_model(tmp_path: Path) -> None:
    proc = run_cli("train", "--model", "resnet", "--out", str(tmp_path / "m.pt"))
    assert_one_line_error(proc, "resnet")


def test_missing_checkpoint(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("evaluate", "--model", str(tmp_path / "nope.pt")), "not found")


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(os.urandom(1000))
    assert_one_line_error(run_cli("evaluate", "--model", str(tmp_path / "junk.pt")), "junk.pt")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("evaluate", "--model", str(tmp_path / "nope.pt"), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_checksum_mismatch_exit_2(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)
    assert_one_line_error(
        run_cli("data", "--root", str(tmp_path)), "checksum mismatch", "train-images-idx3-ubyte"
    )


def test_no_data_and_no_npm(tmp_path: Path) -> None:
    proc = run_cli("data", "--root", str(tmp_path), env={"PATH": str(tmp_path)})
    assert_one_line_error(proc, "npm", "IDENTIKIT_DATA")


def test_cuda_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_cli(
        "train", "--model", "softmax", "--out", str(tmp_path / "m.pt"), "--device", "cuda"
    )
    assert_one_line_error(proc, "--device cuda")


@pytest.mark.mnist
def test_softmax_one_epoch_on_real_mnist(mnist_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "softmax.pt"
    runs = [
        run_cli(
            "train",
            "--model",
            "softmax",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--root",
            str(mnist_root),
            "--json",
            "--seed",
            "7",
        )
        for _ in range(2)
    ]
    summaries = []
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        summaries.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = summaries[0]
    assert summary["model"] == "softmax" and summary["epochs"] == 1
    assert summary["test_accuracy"] >= 0.90
    assert summaries[1]["test_accuracy"] == summary["test_accuracy"]  # same seed, same accuracy
    payload = torch.load(out, weights_only=True)
    assert payload["architecture"] == "softmax"
    assert payload["metadata"]["test_accuracy"] == summary["test_accuracy"]
    assert set(payload["metadata"]["data_checksums"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    evaluated = run_cli("evaluate", "--model", str(out), "--root", str(mnist_root), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert report["accuracy"] == summary["test_accuracy"]
    assert len(report["per_class"]) == 10
    assert sum(map(sum, report["confusion"])) == 10000
