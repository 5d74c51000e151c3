"""The command line as a user meets it: one-line errors with exit 2, --debug for the traceback, and
no progress bar left over an error."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from identikit.base.errors import IdentikitError
from identikit.cli import main, models
from tests.helpers import assert_one_line_error, run_cli, run_main, write_idx_folder


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


def test_errors_clear_a_bar_left_showing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(_: object) -> int:
        tqdm(total=3, file=sys.stderr, desc="left open")
        raise IdentikitError("bad")

    monkeypatch.setattr(models, "cmd_data", fails)
    code, _, err = run_main(capsys, "data")
    # The bar's line was cleared (closed, leave=True writes its final state and a newline),
    # so the error starts a line of its own.
    assert code == 2 and "\nidentikit: error: bad" in err
    assert not list(getattr(tqdm, "_instances", ()))


def test_version_names_identikit_and_what_it_runs_on(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``identikit --version`` was an error (no command given)."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line == (
        f"identikit {importlib.metadata.version('identikit')} (torch {torch.__version__}, "
        f"Python {platform.python_version()})"
    )


def test_version_of_a_source_tree_says_it_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from a checkout with PYTHONPATH=src, no installed package has a version to show."""

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("identikit (source tree, not installed) (torch ")
