"""Atomic writes: a full disk or a kill never leaves half a file, what is not a regular file is
never replaced, and the leftovers of a killed writer are removed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from identikit.base import atomic
from identikit.base.errors import IdentikitError
from identikit.cli import main
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from tests.helpers import assert_clean_error, is_info, run_cli, run_main, search_args


def test_atomic_write_never_leaves_half_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    atomic.atomic_write_text(target, "good")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("identikit.base.atomic.os.fsync", full)
    with pytest.raises(IdentikitError, match="No space left on device"):
        atomic.atomic_write_text(target, "new and longer content")
    assert target.read_text() == "good"
    assert os.listdir(tmp_path) == ["results.json"]  # no temporary file left behind


def test_full_disk_at_the_cli_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.pt"
    save_checkpoint(model, build_model("softmax"), architecture="softmax", metadata={})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("identikit.base.atomic.os.fsync", full)
    code = main(
        [
            "search",
            "--model",
            str(model),
            "--out",
            str(tmp_path / "o"),
            "--runs",
            "1",
            "--digits",
            "1",
            "--no-progress",
        ]
    )
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not is_info(line)]
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0]


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-dev-null"])
def test_atomic_writes_refuse_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/null")
    with pytest.raises(IdentikitError, match="refusing to replace it"):
        atomic.atomic_write_bytes(target, b"data")
    assert not target.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary file left


def test_export_to_a_pipe_is_refused(model_file: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    proc = run_cli("export", "--model", str(model_file), "--format", "onnx", "--out", str(pipe))
    assert_clean_error(proc.returncode, proc.stderr, "refusing to replace it")
    assert os.path.exists(pipe) and not pipe.is_file()


def test_a_long_output_name_fits(model_file: Path, tmp_path: Path) -> None:
    """A 250-character name is legal; its temporary name must be too (the limit is 255)."""
    out = tmp_path / ("m" * 245 + ".onnx")
    proc = run_cli("export", "--model", str(model_file), "--format", "onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_temporary_files_of_a_killed_writer_are_removed(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    leftovers = [
        sweep / f".results.json.k3j2{atomic.TEMPORARY_SUFFIX}",
        sweep / ".sweep-state.npz.a8b7c6.tmp",  # the name earlier versions used
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    keep = sweep / ".notes.tmp"  # not ours
    keep.write_text("mine")
    code, _, err = run_main(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert not any(p.exists() for p in leftovers)
    assert keep.exists()


def test_writes_below_a_root_go_through_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "pngs").symlink_to(outside)
    with pytest.raises(IdentikitError, match="is a link; refusing to write through it") as error:
        atomic.atomic_write_text(root / "pngs" / "sweep" / "0-0.png", "x", root=root)
    assert str(root / "pngs") in str(error.value)
    assert list(outside.iterdir()) == []


def test_writes_below_a_root_make_its_folders_and_replace_atomically(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    root = tmp_path / "out"
    root.symlink_to(user)  # the folder the user names may be a link of theirs
    target = root / "a" / "b" / "file.json"
    atomic.atomic_write_text(target, "first", root=root)
    atomic.atomic_write_text(target, "second", root=root)
    assert (user / "a" / "b" / "file.json").read_text() == "second"
    assert os.listdir(user / "a" / "b") == ["file.json"]  # no temporary file left
    mode = (user / "a" / "b" / "file.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~atomic._umask()  # as a plain open() makes it


def test_writes_below_a_root_replace_a_link_never_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    root = tmp_path / "out"
    root.mkdir()
    (root / "plan.json").symlink_to(victim)
    atomic.atomic_write_text(root / "plan.json", "ours", root=root)
    assert victim.read_text() == "keep me"
    assert not (root / "plan.json").is_symlink() and (root / "plan.json").read_text() == "ours"
    (root / "folder").mkdir()
    with pytest.raises(IdentikitError, match="refusing to replace it"):
        atomic.atomic_write_text(root / "folder", "x", root=root)
    with pytest.raises(IdentikitError, match="not inside"):
        atomic.atomic_write_text(tmp_path / "elsewhere", "x", root=root)
