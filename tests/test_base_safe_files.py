"""Reading a folder someone else wrote: links that lead out are refused, linked folders are not
followed, and files that never end, block, or inflate past the limit are refused before they are
read."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from identikit.base.errors import IdentikitError
from identikit.base.safe_files import read_npz
from tests.helpers import assert_clean_error, run_cli


def test_report_refuses_a_link_to_a_secret(copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nTOP-SECRET-TOKEN")
    (copy / "certainty.png").symlink_to(secret)
    proc = run_cli("report", str(copy))
    assert_clean_error(proc.returncode, proc.stderr, "certainty.png", "leads out")
    assert not (copy / "report.html").exists()


@pytest.mark.parametrize("name", ["results.json", "identikits.npz", "judge.json"])
def test_sweep_files_linked_out_are_refused(copy: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    target = copy / "sweep" / name
    if target.exists():
        shutil.copy(target, outside)
    else:
        outside.write_text("{}")
    target.unlink(missing_ok=True)
    target.symlink_to(outside)
    proc = run_cli("report", str(copy), "--no-animation")
    assert_clean_error(proc.returncode, proc.stderr, name, "leads out")


def test_linked_folders_are_not_followed(copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(copy / "sweep", elsewhere)
    (elsewhere / "results.json").write_text("{}")  # would fail if it were read
    (copy / "linked").symlink_to(elsewhere, target_is_directory=True)
    proc = run_cli("report", str(copy), "--no-animation")
    assert proc.returncode == 0, proc.stderr


def zip_bomb(path: Path, megabytes: int) -> None:
    """An .npz of zeros: tiny on disk, ``megabytes`` when inflated."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.zeros((megabytes, 1024, 256), np.float32))
    path.write_bytes(buffer.getvalue())


def test_an_npz_that_inflates_past_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "identikits.npz"
    zip_bomb(bomb, 8)
    assert bomb.stat().st_size < 100_000
    monkeypatch.setenv("IDENTIKIT_LIMIT_FILE_BYTES", str(4 << 20))
    with pytest.raises(IdentikitError, match="IDENTIKIT_LIMIT_FILE_BYTES"):
        read_npz(bomb)
    monkeypatch.setenv("IDENTIKIT_LIMIT_FILE_BYTES", str(16 << 20))
    assert read_npz(bomb)["images"].shape == (8, 1024, 256)  # lifted as the message says


def test_an_npz_whose_header_lies_is_refused_before_allocating(tmp_path: Path) -> None:
    """A header declaring 10^12 floats over a few bytes of data: no allocation is tried."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", member + b"\x00" * 16)
    with pytest.raises(IdentikitError, match="over the limit"):
        read_npz(path)


@pytest.mark.parametrize("kind", ["urandom", "fifo"])
def test_results_json_that_never_ends_or_blocks(copy: Path, kind: str) -> None:
    target = copy / "sweep" / "results.json"
    target.unlink()
    if kind == "urandom":
        target.symlink_to("/dev/urandom")
    else:
        os.mkfifo(target)
    proc = run_cli("report", str(copy), "--no-animation", timeout=60)
    assert_clean_error(proc.returncode, proc.stderr, "results.json")
