"""Model cards: every checkpoint in a results folder gets one, matched to its sweep by content hash,
and no TorchScript file is run to make it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import hostile_torchscript, read_page, run_main, small_model


def test_every_checkpoint_in_the_folder_gets_a_card(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "models").mkdir()
    small_model(folder / "models" / "unused.pt", seed=7)
    marker = tmp_path / "written-by-the-model"
    hostile_torchscript(folder / "evil.pt", marker)
    (folder / "junk.pth").write_bytes(b"\x00" * 100)
    (folder / "outside.pt").symlink_to(tmp_path / "missing-target.pt")
    code, _, err = run_main(capsys, "report", str(folder), "--no-animation")
    assert code == 0, err
    assert not marker.exists()  # the TorchScript file was never run
    page = read_page(folder)
    cards = {row[0]: row for row in page.table("models")}
    assert set(cards) == {"softmax.pt", "unused.pt"}
    # The sweep's card and the file's, matched by content hash: one row, both facts.
    assert cards["softmax.pt"][7:] == ["softmax.pt", "sweep"]
    assert cards["softmax.pt"][2] == "7,850" and cards["softmax.pt"][3] == "10.00%"
    assert cards["unused.pt"][7:] == ["models/unused.pt", "none"]
    assert "evil.pt is TorchScript" in page.text and "junk.pth" in page.text
