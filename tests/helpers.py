"""Shared builders for the tests: toy models and datasets, the command line in a subprocess, and
the checks several test modules make. Test modules import from here, never from one another."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from identikit.classifier.classifier import Classifier
from identikit.data import datasets as data
from identikit.data.idx import encode_idx
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.sweeps.experiment import SweepConfig

CHROMIUM = shutil.which("chromium")
"""The Debian chromium the report pages are rendered with, or None where it is not installed."""

# --- The command line -------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own (its engine choices and thread counts too)."""
    return subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def is_info(line: str) -> bool:
    """A line a command prints on stderr on its way, before any error."""
    return ": scoring with " in line or line.startswith("measuring scoring engines")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command exited 2 with one line of error, no traceback, naming every fragment."""
    assert proc.returncode == 2, proc.stderr
    # What the command said before the error (the scoring engine it chose) is not the error.
    lines = [line for line in proc.stderr.strip().splitlines() if not is_info(line)]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --- Datasets ---------------------------------------------------------------------------------


def make_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 28x28 uint8 'digits': class k is a bright bar at row 2k+4, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images, labels


def write_idx_folder(folder: Path, train: int = 200, test: int = 100, *, gz: bool = False) -> Path:
    """Write the four MNIST-named IDX files of a synthetic dataset into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = make_digits(n, seed)
        for name, array in zip(data._MNIST_FILES[split], (images, labels), strict=True):
            blob = encode_idx(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
    return folder


# --- Toy models -------------------------------------------------------------------------------


def toy_linear(seed: int = 0, scale: float = 0.05) -> nn.Sequential:
    """A linear model whose classes are reachable inside the pixel box."""
    torch.manual_seed(seed)
    linear = nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.normal_(0, scale)
        linear.bias.zero_()
    return nn.Sequential(nn.Flatten(), linear)


class Constant(nn.Module):
    """Ignores its input: every class has probability 0.1 whatever the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10) + 0 * x.flatten(1)[:, :1]


def softmax_model(*, seed: int = 0, scale: float = 0.05) -> nn.Module:
    """An untrained softmax model whose classes are reachable inside the pixel box."""
    torch.manual_seed(seed)
    model = build_model("softmax")
    linear = model.linear
    assert isinstance(linear, nn.Linear)
    with torch.no_grad():
        linear.weight.normal_(0, scale)
        linear.bias.zero_()
    return model


def small_model(path: Path, seed: int = 0) -> Path:
    """Save :func:`softmax_model` as a checkpoint at ``path`` (claiming 10% test accuracy)."""
    model = softmax_model(seed=seed)
    save_checkpoint(path, model, architecture="softmax", metadata={"test_accuracy": 0.1})
    return path


# --- Sweeps -----------------------------------------------------------------------------------

CONFIG = SweepConfig(
    digits=(0, 3, 7),
    runs=3,
    strategy_settings={"candidates": 30},
    max_queries=1500,
    patience=15 * 30,  # 15 iterations of 30 candidates
    seed=2,
)
"""A small sweep of the toy :func:`classifier`: three digits, three runs each."""

TIMING = {"seconds", "queries_per_second"}
"""The fields of results.json that differ between two runs of the same sweep."""


def classifier() -> Classifier:
    """The toy linear model as a classifier, its checkpoint's hash given as 'toy'."""
    return Classifier(toy_linear(scale=0.02), sha256="toy")


def same_results(a: Path, b: Path) -> None:
    """Two sweep folders hold identical identikits and results, bar timing fields."""
    with np.load(a / "identikits.npz") as x, np.load(b / "identikits.npz") as y:
        assert np.array_equal(x["images"], y["images"])
        assert np.array_equal(x["digits"], y["digits"])
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (a, b))
    for record in (ra, rb):
        for key in TIMING:
            record.pop(key)
        record["model"].pop("path")
    assert ra == rb


def stop_after(commits: int) -> Callable[[], bool]:
    """A should_stop callback that asks to stop once ``commits`` groups are committed."""
    calls = iter(range(10**9))
    return lambda: next(calls) >= commits
