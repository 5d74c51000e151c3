"""Judging identikits: transfer to independent models, the nearest real digits, a comparison judged
sweep by sweep, and the user's own models as judges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.cli import main
from identikit.data import datasets as data
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.studies.judge import _file_token, comparison_sweeps, nearest_neighbours, transfer
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.records import read_results
from identikit.sweeps.result_files import check_judge
from tests.helpers import assert_one_line_error, make_digits, run_cli


def test_nearest_neighbours_of_real_digits_are_themselves() -> None:
    train_x, train_y = make_digits(300)
    images = train_x[:20].astype(np.float32) / 255
    found = nearest_neighbours(images, train_y[:20].astype(np.int64), train_x, train_y)
    assert found["share"] == 1.0
    assert max(found["distance_own_class"]) < 1e-2
    assert min(found["distance_other_classes"]) > 1.0
    wrong = nearest_neighbours(images, (train_y[:20].astype(np.int64) + 1) % 10, train_x, train_y)
    assert wrong["share"] == 0.0


def test_nearest_index_points_at_the_digit_itself() -> None:
    train_x, train_y = make_digits(300)
    images = train_x[10:30].astype(np.float32) / 255
    found = nearest_neighbours(images, train_y[10:30].astype(np.int64), train_x, train_y)
    assert found["nearest_index"] == list(range(10, 30))


class AlwaysThree(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 10) + 0 * x.flatten(1)[:, :1]
        logits[:, 3] = 5.0
        return logits


def test_transfer_matrix() -> None:
    digits = np.array([3, 3, 1, 7])
    verdict = transfer(Classifier(AlwaysThree()), np.zeros((4, 28, 28), np.float32), digits)
    assert verdict["agreement"] == 0.5
    matrix = np.array(verdict["matrix"])
    assert matrix[:, 3].sum() == 4 and matrix[3, 3] == 2 and matrix[1, 3] == 1


def test_missing_sweep_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError, match="no finished sweep"):
        read_sweep_folder(tmp_path)
    assert_one_line_error(
        run_cli("judge", str(tmp_path), "--judges", "softmax"), "no finished sweep"
    )


STRATEGIES = ("square", "random-masks")


def own_model(path: Path, *, classes: int = 10, seed: int = 1) -> Path:
    """A softmax checkpoint with weights of its own (not the searched model's)."""
    torch.manual_seed(seed)
    model = build_model("softmax", classes)
    save_checkpoint(path, model, architecture="softmax", metadata={"test_accuracy": 0.1})
    return path


@pytest.fixture
def compared(
    tiny_model: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A finished comparison of two strategies, 2 digits x 1 run each, on the tiny model."""
    monkeypatch.setenv("IDENTIKIT_DATA", str(tmp_path / "data"))
    out = tmp_path / "compare"
    code = main(
        [
            "compare",
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--strategies",
            ",".join(STRATEGIES),
            "--digits",
            "0,1",
            "--runs",
            "1",
            "--max-queries",
            "100",
            "--backend",
            "eager",
            "--chunk-size",
            "64",
            "--no-progress",
            "--json",
        ]
    )
    assert code == 0
    return out


def judge(folder: Path, root: Path, *args: str) -> int:
    return main(["judge", str(folder), "--dataset", "tiny", "--root", str(root), *args])


def test_a_comparison_is_judged_sweep_by_sweep_in_one_table(
    compared: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    mine = own_model(tmp_path / "mine.pt")
    assert judge(compared, tiny_dataset, "--judges", str(mine)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["strategy", "mine.pt", "nearest"]
    assert [line.split()[0] for line in lines[1:3]] == list(STRATEGIES)
    _, train_labels = data.load_dataset("tiny", "train", tiny_dataset)
    for strategy in STRATEGIES:
        record = json.loads((compared / strategy / "judge.json").read_text())
        assert record["strategy"] == strategy and record["dataset"] == "tiny"
        assert set(record["judges"]) == {"mine.pt"}  # named by its file name
        assert f"{record['judges']['mine.pt']:.1%}" in lines[1 + STRATEGIES.index(strategy)]
        # The nearest digit of each identikit, by its index in the training split.
        assert len(record["nearest_index"]) == record["identikits"] == 2
        assert train_labels[record["nearest_index"]].tolist() == record["nearest_label"]
        results = read_results(compared / strategy)
        checked = check_judge(record, "judge.json", 10, identikits=2, train_size=200)
        assert checked["nearest_index"] == record["nearest_index"]
        assert checked["dataset"] == "tiny" and results["model"]["classes"] == 10
    assert judge(compared, tiny_dataset, "--judges", str(mine), "--json") == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(rows) == set(STRATEGIES) and rows["square"]["identikits"] == 2


def test_one_sweep_of_a_comparison_is_judged_alone(
    compared: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    mine = own_model(tmp_path / "mine.pt")
    assert judge(compared / "square", tiny_dataset, "--judges", str(mine), "--json") == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["strategy"] == "square" and set(row["judges"]) == {"mine.pt"}
    assert not (compared / "random-masks" / "judge.json").exists()


def test_own_judges_must_fit_the_sweep(
    compared: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    five = own_model(tmp_path / "five.pt", classes=5)
    assert judge(compared, tiny_dataset, "--judges", str(five)) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "five.pt has 5 classes" in error[0]
    assert judge(compared, tiny_dataset, "--judges", str(tmp_path / "nowhere.onnx")) == 2
    assert "unknown judge" in capsys.readouterr().err
    mine = own_model(tmp_path / "mine.pt")
    assert judge(compared, tiny_dataset, "--judges", f"{mine},{mine}") == 2
    assert "twice" in capsys.readouterr().err
    assert not (compared / "square" / "judge.json").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript is deprecated
def test_a_torchscript_judge_needs_trust_code(
    compared: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(2)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(build_model("softmax").eval()), str(scripted))
    capsys.readouterr()
    assert judge(compared, tiny_dataset, "--judges", str(scripted)) == 2
    assert "--trust-code" in capsys.readouterr().err
    assert judge(compared, tiny_dataset, "--judges", str(scripted), "--trust-code") == 0
    record = json.loads((compared / "square" / "judge.json").read_text())
    assert set(record["judges"]) == {"scripted.pt"}


def test_a_compare_json_leads_only_to_its_own_subfolders(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "compare").mkdir()
    (tmp_path / "compare" / "compare.json").write_text(json.dumps({"../elsewhere": {}, "": {}}))
    with pytest.raises(IdentikitError, match="names no sweep folder"):
        comparison_sweeps(tmp_path / "compare")


def test_judges_of_an_idx_dataset_are_cached_in_one_file(tmp_path: Path) -> None:
    """A dataset named by a path (idx:DIR) gives one file name in the judges' cache, not a
    tree of folders under it."""
    token = _file_token(f"idx:{tmp_path}/digits")
    assert "/" not in token and token.startswith("idx_")
    assert _file_token("mnist") == "mnist"
    assert _file_token("idx:/a/b") != _file_token("idx:/a_b")


@pytest.mark.mnist
def test_judge_cli_on_real_mnist(mnist_root: Path, mnist_softmax: Path, tmp_path: Path) -> None:
    model = mnist_softmax
    sweep = tmp_path / "sweep"
    assert (
        run_cli(
            "search",
            "--model",
            str(model),
            "--out",
            str(sweep),
            "--runs",
            "2",
            "--strategy",
            "square",
            "--max-queries",
            "500",
            "--no-progress",
        ).returncode
        == 0
    )
    proc = run_cli(
        "judge",
        str(sweep),
        "--judges",
        "softmax",
        "--root",
        str(mnist_root),
        "--cache",
        str(tmp_path / "judges"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["identikits"] == 20
    assert 0 <= verdict["judges"]["softmax"] <= 1 and 0 <= verdict["nearest_neighbour"] <= 1
    assert (tmp_path / "judges" / "mnist-softmax-seed1.pt").is_file()  # cached for next time
    full = json.loads((sweep / "judge.json").read_text())
    assert np.array(full["transfer_matrices"]["softmax"]).sum() == 20
