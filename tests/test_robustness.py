"""Nothing lost, nothing trusted: full disks, hostile checkpoints, bad input at the CLI."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identikit.base import atomic
from identikit.base.errors import CheckpointError, IdentikitError
from identikit.cli import main
from identikit.models import build_model
from identikit.models.checkpoint import load_checkpoint, save_checkpoint
from identikit.sweeps.sweep import sweep_to_folder
from identikit.sweeps.sweep_state import STATE_FILE
from tests.helpers import (
    CONFIG,
    assert_one_line_error,
    classifier,
    is_info,
    run_cli,
    same_results,
    stop_after,
)


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


def test_full_disk_mid_sweep_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tmp_path / "whole"
    sweep_to_folder(classifier(), CONFIG, whole, progress=False)
    folder = tmp_path / "cut"
    sweep_to_folder(classifier(), CONFIG, folder, progress=False, should_stop=stop_after(3))
    saved = (folder / STATE_FILE).read_bytes()
    real_fsync, calls = os.fsync, iter(range(10**6))

    def fills_up(fd: int) -> None:
        if next(calls) >= 1:  # the write probe passes, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("identikit.base.atomic.os.fsync", fills_up)
    with pytest.raises(IdentikitError, match="No space left on device"):
        sweep_to_folder(classifier(), CONFIG, folder, progress=False, save_every=0.0)
    assert (folder / STATE_FILE).read_bytes() == saved  # the last good state is intact
    monkeypatch.setattr("identikit.base.atomic.os.fsync", real_fsync)
    assert sweep_to_folder(classifier(), CONFIG, folder, progress=False).resumed
    same_results(whole, folder)


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


@pytest.mark.parametrize("case", ["random", "unknown-architecture", "wrong-shape", "pickle"])
def test_bad_checkpoints_at_the_cli(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.pt"
    state = build_model("softmax").state_dict()
    base = {"format": "identikit-checkpoint", "version": 1, "num_classes": 10, "metadata": {}}
    payload: object = {
        "random": None,
        "unknown-architecture": {**base, "architecture": "vgg", "state_dict": state},
        "wrong-shape": {**base, "architecture": "cnn", "state_dict": state},
        "pickle": {**base, "architecture": "softmax", "state_dict": state, "x": io.StringIO()},
    }[case]
    if payload is None:
        path.write_bytes(os.urandom(5000))
    else:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
    proc = run_cli("search", "--model", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "bad.pt")


def _valid_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "identikit-checkpoint",
            "version": 1,
            "architecture": "softmax",
            "num_classes": 10,
            "state_dict": build_model("softmax").state_dict(),
            "metadata": {"seed": 1},
        },
        buffer,
    )
    return buffer.getvalue()


VALID = _valid_checkpoint()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzzed_checkpoints_load_or_fail_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    blob = bytearray(VALID)
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(blob) - 1))
            blob[position] = data.draw(st.integers(0, 255))
    else:
        blob = bytearray(data.draw(st.binary(max_size=2000)))
    path = tmp_path / "fuzz.pt"
    path.write_bytes(bytes(blob))
    try:
        model, _ = load_checkpoint(path)
    except CheckpointError:
        return
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
