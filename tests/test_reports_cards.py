"""Model cards: every checkpoint in a results folder gets one, matched to its sweep by content hash,
and no TorchScript file is run to make it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.models.preprocessing import Preprocessing
from identikit.reports.cards import card_of_record
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
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
    assert cards["softmax.pt"][8:] == ["softmax.pt", "sweep"]
    assert cards["softmax.pt"][3] == "7,850" and cards["softmax.pt"][4] == "10.00%"
    assert cards["unused.pt"][8:] == ["models/unused.pt", "none"]
    # Each model's input shape, and the conventions its sweep recorded (identikit's own here).
    assert cards["softmax.pt"][2].replace("1x28x28", "", 1).startswith("pixels 0,1")
    assert cards["unused.pt"][2] == "1x28x28"  # from the checkpoint: no sweep, no conventions
    assert "evil.pt is TorchScript" in page.text and "junk.pth" in page.text


def test_a_sweep_card_states_the_input_shape_and_conventions(tmp_path: Path) -> None:
    """What a sweep records of its model: the shape always (MNIST's before shapes were
    recorded), the conventions where they are not identikit's own."""
    shape = ImageShape(3, 8, 8)
    normalised = Preprocessing(input_range="-1,1", mean=(0.5, 0.4, 0.3), std=0.25)
    torch.manual_seed(0)
    model = Classifier(
        build_model("softmax", 10, shape),
        ModelInfo(name="n.pt", sha256="n", input_shape=shape, preprocessing=normalised),
    )
    config = SweepConfig(digits=(0,), runs=1, max_queries=50)
    outcome = sweep_to_folder(model, config, tmp_path / "s", options=SweepOptions(progress=False))
    assert outcome.results is not None
    record = outcome.results["model"]
    assert record["input_shape"] == [3, 8, 8]
    assert record["preprocessing"].startswith("pixels -1,1; mean 0.5,0.4,0.3; std 0.25")
    card = card_of_record(record)
    assert card.input_shape == "3x8x8" and card.conventions == record["preprocessing"]
    own = card_of_record({**record, "preprocessing": None})
    assert own.conventions == Preprocessing().describe()  # identikit's own: pixels 0,1
    old = card_of_record({k: v for k, v in record.items() if k != "input_shape"})
    assert old.input_shape == "1x28x28" and old.conventions == "not recorded"
