"""The command line as a user meets it: one-line errors with exit 2, --debug for the traceback, and
no progress bar left over an error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from identikit.base.errors import IdentikitError
from identikit.cli import models
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
