"""One process per output folder: a second is refused, a killed holder's lock is released, and a
lock file that is a link is not followed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from identikit.base.errors import IdentikitError
from identikit.base.folder_lock import LOCK_FILE, locked_folder
from tests.helpers import assert_clean_error, run_cli, run_main, search_args


def test_a_second_process_on_a_locked_folder_is_refused(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locked_folder(out):
        # Another process (flock is per open file, and the kernel arbitrates).
        proc = run_cli(*search_args(model_file, out))
    assert_clean_error(proc.returncode, proc.stderr, "in use by another identikit process")
    assert f"pid {os.getpid()}" in proc.stderr
    assert not (out / "results.json").exists()
    assert run_cli(*search_args(model_file, out)).returncode == 0  # free again


def test_the_lock_is_released_when_its_holder_is_killed(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from identikit.base.folder_lock import locked_folder\n"
            f"import time\nwith locked_folder({str(out)!r}):\n    print('held', flush=True)\n"
            "    time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    refused = run_cli(*search_args(model_file, out))
    assert_clean_error(refused.returncode, refused.stderr, f"pid {holder.pid}")
    holder.kill()
    holder.wait()
    assert run_cli(*search_args(model_file, out)).returncode == 0


def test_lock_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(victim)
    with pytest.raises(IdentikitError, match="cannot lock"), locked_folder(out):
        pass
    assert victim.read_text() == "keep me"


def test_lock_file_hard_linked_to_a_users_file_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / LOCK_FILE)
    with pytest.raises(IdentikitError, match="2 links") as error, locked_folder(out):
        pass
    assert str(out / LOCK_FILE) in str(error.value) and "\n" not in str(error.value)
    assert victim.read_text() == "keep me"


def test_search_on_a_hard_linked_lock_file_is_one_line(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / LOCK_FILE)
    code, _, err = run_main(capsys, *search_args(model_file, out))
    assert_clean_error(code, err, "a hard link", str(out / LOCK_FILE))
    assert victim.read_text() == "keep me"
    assert not (out / "results.json").exists()
