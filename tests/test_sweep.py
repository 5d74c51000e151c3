"""Resumable sweeps: pause, kill -9, resume, and refusals to mix sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.strategies import base
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import sweep_to_folder
from identikit.sweeps.sweep_state import STATE_FILE
from tests.helpers import CONFIG, classifier, same_results, stop_after, toy_linear


def test_pause_anywhere_then_resume_gives_identical_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "GROUP_IMAGES", 60)  # 2 runs per group: pauses fall mid-iteration
    whole = sweep_to_folder(classifier(), CONFIG, tmp_path / "whole", progress=False)
    assert whole.results is not None and not whole.resumed
    total_commits = sum(r["iterations"] for r in whole.results["runs"]) // 2
    for pause_after in (1, 4, total_commits // 2):
        folder = tmp_path / f"paused-{pause_after}"
        paused = sweep_to_folder(
            classifier(),
            CONFIG,
            folder,
            progress=False,
            should_stop=stop_after(pause_after),
        )
        assert paused.results is None and (folder / STATE_FILE).is_file()
        assert not (folder / "results.json").exists()
        resumed = sweep_to_folder(classifier(), CONFIG, folder, progress=False)
        assert resumed.resumed and resumed.results is not None
        same_results(tmp_path / "whole", folder)


def test_finished_sweep_is_not_redone(tmp_path: Path) -> None:
    sweep_to_folder(classifier(), CONFIG, tmp_path, progress=False)
    again = classifier()
    outcome = sweep_to_folder(again, CONFIG, tmp_path, progress=False)
    assert outcome.already_done and outcome.results is not None
    assert again.queries == 0
    (tmp_path / STATE_FILE).unlink()  # results alone still identify the sweep
    assert sweep_to_folder(classifier(), CONFIG, tmp_path, progress=False).already_done


def test_different_settings_are_refused(tmp_path: Path) -> None:
    sweep_to_folder(classifier(), CONFIG, tmp_path, progress=False, should_stop=stop_after(2))
    other = SweepConfig(**{**CONFIG.__dict__, "runs": 4, "strategy_settings": {"candidates": 31}})
    with pytest.raises(
        DifferentSweepError, match=r"different sweep .*--candidates: 30 -> 31.*--runs: 3 -> 4"
    ):
        sweep_to_folder(classifier(), other, tmp_path, progress=False)
    with pytest.raises(IdentikitError, match=r"--model: toy -> other"):
        sweep_to_folder(
            Classifier(toy_linear(scale=0.02), sha256="other"), CONFIG, tmp_path, progress=False
        )
    # The refused calls left the saved state as it was: the original sweep still resumes.
    assert sweep_to_folder(classifier(), CONFIG, tmp_path, progress=False).resumed


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(os.urandom(100))
    with pytest.raises(IdentikitError, match=r"unreadable.*delete it"):
        sweep_to_folder(classifier(), CONFIG, tmp_path, progress=False)


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    c = classifier()
    with pytest.raises(IdentikitError, match="cannot create output folder"):
        sweep_to_folder(c, CONFIG, tmp_path / "file" / "sub", progress=False)
    assert c.queries == 0  # refused before any work


# --- the real thing: a CLI sweep killed with SIGKILL or paused with Ctrl-C, then resumed ---


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained CNN: slow enough on CPU for a sweep to be interrupted mid-way."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "cnn.pt"
    save_checkpoint(path, build_model("cnn"), architecture="cnn", metadata={})
    return path


def search_args(model: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "identikit",
        "search",
        "--model",
        str(model),
        "--out",
        str(out),
        "--digits",
        "0-9",
        "--runs",
        "1",
        "--candidates",
        "50",
        "--max-queries",
        "1001",
        "--patience",
        "50000",  # 1000 iterations of 50 candidates
        "--target",
        "0.999999",
        "--save-every",
        "0.1",
        "--no-progress",
        "--device",
        "cpu",
    ]


def start_and_interrupt(model: Path, out: Path, sig: int) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        search_args(model, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = out / STATE_FILE
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more saves
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def whole_sweep(slow_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted sweep every interrupted one is compared with."""
    out = tmp_path_factory.mktemp("whole")
    whole = subprocess.run(
        search_args(slow_model, out), capture_output=True, text=True, timeout=300, check=False
    )
    assert whole.returncode == 0, whole.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_cli_sweep_resumes_to_identical_results(
    slow_model: Path, whole_sweep: Path, tmp_path: Path, sig: int
) -> None:
    cut = start_and_interrupt(slow_model, tmp_path / "cut", sig)
    assert cut.returncode != 0, "the sweep finished before it could be interrupted"
    assert not (tmp_path / "cut" / "results.json").exists()
    if sig != signal.SIGKILL:  # Ctrl-C and SIGTERM alike: saved, the resume command said
        assert cut.returncode == 128 + sig
        assert "Resume with" in cut.stderr and "identikit search" in cut.stderr
        assert "Traceback" not in cut.stderr
    resumed = subprocess.run(
        search_args(slow_model, tmp_path / "cut"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    same_results(whole_sweep, tmp_path / "cut")
