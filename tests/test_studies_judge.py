"""Judging identikits: transfer to independent models, the nearest real digits, a comparison judged
sweep by sweep, the user's own models as judges, and identikits of any shape judged by judges
trained on their model's dataset (the 8 x 8 digits, shapes in colour, an npz file), a judge or
dataset of another shape refused in one line."""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.cli import main
from identikit.data import datasets as data
from identikit.data.image_set import ImageSet
from identikit.data.images import load_images
from identikit.models import build_model
from identikit.models.checkpoint import load_checkpoint, save_checkpoint
from identikit.studies.judge import (
    JUDGES,
    Identikits,
    JudgeSetup,
    _file_token,
    comparison_sweeps,
    judge_all,
    judge_file,
    judge_identikits,
    judge_sweep,
    load_judges,
    nearest_neighbours,
    transfer,
)
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.records import read_results
from identikit.sweeps.result_files import check_judge
from tests.helpers import (
    assert_one_line_error,
    make_digits,
    one_line_message,
    rewrite_json,
    rewrite_npz,
    run_cli,
)


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


def own_model(
    path: Path, *, classes: int = 10, seed: int = 1, shape: ImageShape | None = None
) -> Path:
    """A softmax checkpoint with weights of its own (not the searched model's), for images of
    ``shape`` (MNIST's by default)."""
    torch.manual_seed(seed)
    shape = shape or ImageShape(1, 28, 28)
    model = build_model("softmax", classes, shape)
    metadata = {"test_accuracy": 0.1}
    save_checkpoint(path, model, architecture="softmax", metadata=metadata, input_shape=shape)
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


# --- Judges and real images of any dataset, identikits of any shape ----------------------------

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="scikit-learn is not installed"
)


def reshaped_sweep(finished: Path, out: Path, data: ImageSet) -> tuple[Path, list[int]]:
    """A copy of a finished sweep whose identikits are real training images of ``data`` (the
    first of each run's class, by its index in the training split), of ``data``'s shape: a
    sweep of a model of that shape, as far as judging goes."""
    shutil.copytree(finished / "sweep", out)
    train_images, train_labels = data.split("train")
    chosen: list[int] = []
    for digit in read_results(out)["runs"]:
        candidates = np.flatnonzero(train_labels == digit["digit"])
        chosen.append(int(next(i for i in candidates if i not in chosen)))
    pixels = train_images[chosen].astype(np.float32) / 255
    images = pixels[:, 0] if data.shape.channels == 1 else pixels  # grey kept as (N, H, W)
    rewrite_npz(out / "identikits.npz", lambda arrays: {**arrays, "images": images})

    def recorded(results: dict[str, Any]) -> dict[str, Any]:
        results["model"]["input_shape"] = list(data.shape.dims)
        return results

    rewrite_json(out / "results.json", recorded)
    return out, chosen


def write_pictures(path: Path, count: int = 120) -> Path:
    """A real .npz dataset of 8 x 8 grey pictures in ten classes (a bright row per class)."""
    rng = np.random.default_rng(4)
    labels = np.arange(count) % 10
    images = rng.integers(0, 60, (count, 8, 8), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[label % 8, :] = 255 if label < 8 else 0
        image[:, 3] = 200 if label >= 8 else image[:, 3]
    np.savez(path, images=images, labels=labels)
    return path


def quick(
    dataset: str, cache: Path, heard: list[str] | None = None, *, epochs: int = 1
) -> JudgeSetup:
    """Built-in judges trained ``epochs`` on ``dataset``, on the CPU, cached in ``cache``."""
    log = None if heard is None else heard.append
    return JudgeSetup(dataset=dataset, cache=cache, device="cpu", epochs=epochs, log=log)


def test_a_judges_file_names_its_dataset_shape_and_epochs(tmp_path: Path) -> None:
    spec = JUDGES["softmax"]
    assert judge_file(spec, JudgeSetup()) == "mnist-softmax-seed1.pt"  # as cached before
    colour = judge_file(spec, JudgeSetup(dataset="shapes"), ImageShape(3, 32, 32))
    assert colour == "shapes-3x32x32-softmax-seed1.pt"
    quick_one = judge_file(spec, JudgeSetup(dataset="shapes", epochs=1), ImageShape(3, 32, 32))
    assert quick_one == "shapes-3x32x32-softmax-seed1-epochs1.pt"
    npz = judge_file(spec, JudgeSetup(dataset=f"npz:{tmp_path}/a.npz"), ImageShape(1, 8, 8))
    assert "/" not in npz and "-1x8x8-softmax-seed1.pt" in npz


def test_built_in_judges_are_trained_for_the_datasets_colour_shape_and_cached(
    tmp_path: Path,
) -> None:
    heard: list[str] = []
    setup = quick("shapes", tmp_path / "judges", heard)
    judges = load_judges(["softmax", "mlp"], setup)
    assert [j.classifier.info.input_shape for j in judges] == [ImageShape(3, 32, 32)] * 2
    softmax = tmp_path / "judges" / "shapes-3x32x32-softmax-seed1-epochs1.pt"
    assert load_checkpoint(softmax)[1]["dataset"] == "shapes" and len(heard) == 2
    load_judges(["softmax", "mlp"], setup)
    assert len(heard) == 2  # cached: nothing trained again
    # A file of another shape under the judge's name (written by hand) is trained again.
    save_checkpoint(softmax, build_model("softmax"), architecture="softmax", metadata={})
    (again,) = load_judges(["softmax"], setup)
    assert again.classifier.info.input_shape == ImageShape(3, 32, 32) and len(heard) == 3


def test_colour_identikits_are_judged_by_colour_judges_and_real_colour_images(
    tmp_path: Path,
) -> None:
    data = load_images("shapes")
    train_images, train_labels = data.split("train")
    images = train_images[:20].astype(np.float32) / 255
    judges = load_judges(["softmax", "mlp"], quick("shapes", tmp_path), data.shape)
    real = (train_images, train_labels)
    record = judge_identikits(Identikits(images, train_labels[:20], 10), judges, real)
    assert record["nearest_neighbour"] == 1.0 and record["nearest_index"] == list(range(20))
    for name in ("softmax", "mlp"):
        assert np.array(record["transfer_matrices"][name]).sum() == 20
        assert 0 <= record["judges"][name] <= 1
    grey = own_model(tmp_path / "grey.pt")
    with pytest.raises(IdentikitError) as error:
        judge_identikits(
            Identikits(images, train_labels[:20], 10, source="mine"),
            load_judges([str(grey)]),
            real,
        )
    assert one_line_message(error) == (
        "judge grey.pt takes 1x28x28 images; the identikits of mine are 3x32x32"
    )


@needs_sklearn
def test_a_sweep_of_8x8_digits_is_judged_by_judges_of_the_8x8_digits(
    finished: Path, tmp_path: Path
) -> None:
    data = load_images("sklearn-digits")
    sweep, chosen = reshaped_sweep(finished, tmp_path / "sweep", data)
    setup = quick("sklearn-digits", tmp_path / "judges", epochs=3)  # 1 epoch: 49%, refused
    ((folder, record),) = judge_all(sweep, ["softmax", "cnn-seed1"], setup)
    assert folder == sweep and record["dataset"] == "sklearn-digits"
    assert record["nearest_neighbour"] == 1.0 and record["nearest_index"] == chosen
    assert set(record["judges"]) == {"softmax", "cnn-seed1"}
    assert np.array(record["transfer_matrices"]["cnn-seed1"]).sum() == len(chosen)
    written = json.loads((sweep / "judge.json").read_text())
    train_size = len(data.split("train")[1])
    checked = check_judge(written, "judge.json", 10, identikits=len(chosen), train_size=train_size)
    assert checked["nearest_index"] == chosen
    assert (tmp_path / "judges" / "sklearn-digits-1x8x8-cnn-seed1-epochs3.pt").is_file()


def test_a_sweep_is_judged_with_the_images_of_an_npz_file(finished: Path, tmp_path: Path) -> None:
    spec = f"npz:{write_pictures(tmp_path / 'pictures.npz')}"
    sweep, chosen = reshaped_sweep(finished, tmp_path / "sweep", load_images(spec))
    mine = own_model(tmp_path / "mine.pt", shape=ImageShape(1, 8, 8))
    heard: list[str] = []
    record = judge_sweep(sweep, [str(mine)], quick(spec, tmp_path / "judges", heard))
    assert record["dataset"] == spec and record["nearest_index"] == chosen
    assert record["nearest_neighbour"] == 1.0 and set(record["judges"]) == {"mine.pt"}
    info = record["judge_info"]["mine.pt"]
    assert info["kind"] == "file" and info["test_images"] == 20 and info["accuracy"] < 0.5
    assert any("warning: judge mine.pt is" in line for line in heard)  # an untrained judge
    assert not (sweep / "judge.json").exists()  # judge_sweep writes nothing


@pytest.mark.parametrize("judging", [judge_all, judge_sweep])
def test_built_in_judges_are_refused_for_a_tiny_dataset_before_training(
    finished: Path, tmp_path: Path, judging: Any
) -> None:
    """100 colour images: the built-in judges would be trained on 83 of them and say chance
    (10%) on everything; refused in one line naming the count, nothing trained or written."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images, labels=np.arange(100) % 10)
    spec = f"npz:{tmp_path / 'tiny.npz'}"
    sweep, _ = reshaped_sweep(finished, tmp_path / "sweep", load_images(spec))
    with pytest.raises(IdentikitError) as error:
        judging(sweep, ["colour-cnn-seed1"], quick(spec, tmp_path / "judges"))
    assert one_line_message(error) == (
        f"judge colour-cnn-seed1: {spec} has 83 training images, and a built-in judge needs at "
        "least 1,000 to be worth hearing: name a model file of your own in --judges instead"
    )
    assert not (tmp_path / "judges").exists() and not (sweep / "judge.json").exists()


def test_a_dataset_of_another_shape_is_refused_before_any_judge_is_trained(
    finished: Path, tmp_path: Path
) -> None:
    spec = f"npz:{write_pictures(tmp_path / 'pictures.npz')}"
    sweep, _ = reshaped_sweep(finished, tmp_path / "sweep", load_images(spec))
    for judging in (judge_all, judge_sweep):
        with pytest.raises(IdentikitError) as error:
            judging(sweep, ["softmax"], quick("shapes", tmp_path / "judges"))
        message = one_line_message(error)
        assert "1x8x8" in message and "3x32x32" in message and "shapes" in message
    assert not (tmp_path / "judges").exists()
    mine = own_model(tmp_path / "mine.pt")  # a judge file of MNIST's shape
    with pytest.raises(IdentikitError) as error:
        judge_all(sweep, [str(mine)], quick(spec, tmp_path / "judges"))
    assert one_line_message(error) == (
        f"judge mine.pt takes 1x28x28 images; the identikits of {sweep} are 1x8x8"
    )
    assert not (sweep / "judge.json").exists()
    # A folder without a sweep is refused before the dataset is even looked for.
    nowhere = JudgeSetup(dataset="mnist", root=tmp_path / "no-data", cache=tmp_path / "judges")
    with pytest.raises(IdentikitError, match="no finished sweep"):
        judge_all(tmp_path / "empty", ["softmax"], nowhere)
    assert not (tmp_path / "no-data").exists()


def test_a_colour_sweep_folder_is_judged_with_colour_judges(finished: Path, tmp_path: Path) -> None:
    """A built-in judge below 50% on the test images (softmax, one epoch on shapes: 9%) is
    refused before it judges; a judge file of the user's own judges with its accuracy."""
    sweep, chosen = reshaped_sweep(finished, tmp_path / "sweep", load_images("shapes"))
    with pytest.raises(IdentikitError) as error:
        judge_all(sweep, ["softmax"], quick("shapes", tmp_path / "judges"))
    message = one_line_message(error)
    assert (
        message.startswith("judge softmax is ") and "test images of shapes (below 50%)" in message
    )
    assert not (sweep / "judge.json").exists()
    mine = own_model(tmp_path / "mine.pt", shape=ImageShape(3, 32, 32))
    ((_, record),) = judge_all(sweep, [str(mine)], quick("shapes", tmp_path / "judges"))
    assert record["dataset"] == "shapes" and record["nearest_index"] == chosen
    assert record["nearest_neighbour"] == 1.0
    assert np.array(record["transfer_matrices"]["mine.pt"]).sum() == len(chosen)
    written = json.loads((sweep / "judge.json").read_text())
    assert written["nearest_index"] == chosen
    assert written["judge_info"]["mine.pt"]["test_images"] == 1000


def test_verdicts_of_different_judges_accumulate_while_the_identikits_stay(
    finished: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """Two runs with two judges: judge.json holds both verdicts; once the identikits change,
    the earlier judge's verdict is dropped with a line saying so."""
    sweep = tmp_path / "sweep"
    shutil.copytree(finished / "sweep", sweep)
    first, second = own_model(tmp_path / "a.pt", seed=1), own_model(tmp_path / "b.pt", seed=2)
    heard: list[str] = []
    setup = JudgeSetup(dataset="tiny", root=tiny_dataset, device="cpu", log=heard.append)
    judge_all(sweep, [str(first)], setup)
    ((_, record),) = judge_all(sweep, [str(second)], setup)
    written = json.loads((sweep / "judge.json").read_text())
    assert set(written["judges"]) == set(record["judges"]) == {"a.pt", "b.pt"}
    assert set(written["transfer_matrices"]) == set(written["judge_info"]) == {"a.pt", "b.pt"}
    assert written["judge_info"]["a.pt"]["file"] == str(first)
    assert written["judge_info"]["b.pt"]["test_images"] == 100
    checked = check_judge(written, "judge.json", 10)
    assert checked["identikits_sha256"] == written["identikits_sha256"]
    assert set(checked["judge_info"]) == {"a.pt", "b.pt"}
    # The same judge again replaces its own verdict only.
    judge_all(sweep, [str(second)], setup)
    assert set(json.loads((sweep / "judge.json").read_text())["judges"]) == {"a.pt", "b.pt"}
    assert not any("dropping" in line for line in heard)
    # Other identikits: the verdicts of a.pt were of images that are no longer there.
    rewrite_npz(sweep / "identikits.npz", lambda arrays: {**arrays, "images": arrays["images"] / 2})
    judge_all(sweep, [str(second)], setup)
    assert set(json.loads((sweep / "judge.json").read_text())["judges"]) == {"b.pt"}
    assert (
        f"{sweep / 'judge.json'}: dropping the earlier verdicts of a.pt (the identikits "
        "have changed since)" in heard
    )


def test_a_judge_json_written_before_judge_info_still_reads() -> None:
    old = {
        "judges": {"softmax": 0.5},
        "nearest_neighbour": 1.0,
        "transfer_matrices": {"softmax": [[1, 1], [0, 2]]},
    }
    checked = check_judge(old, "judge.json", 2)
    assert checked["judges"] == {"softmax": 0.5} and checked["judge_info"] == {}
    assert checked["class_names"] is None and checked["identikits_sha256"] is None
    damaged = {**old, "judge_info": {"softmax": {"accuracy": 2, "test_images": 1}}}
    with pytest.raises(IdentikitError, match=r"judge_info\.softmax"):
        check_judge(damaged, "judge.json", 2)


class OneRow(nn.Module):
    """A judge that reshapes its inputs to one row (``reshape(1, -1)``): it takes a batch of
    1 only, as the quantized MobileNetV2 of PyTorch's demo app does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(data.MNIST_SHAPE.size, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(x.reshape(1, -1))
        return logits


def test_a_file_judge_of_batch_one_is_run_image_by_image_and_the_log_hears_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "one-row.pt"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation
        script = torch.jit.trace(OneRow().eval(), torch.rand(1, *data.MNIST_SHAPE.dims))  # type: ignore[no-untyped-call]
        torch.jit.save(script, str(path))
    heard: list[str] = []
    setup = JudgeSetup(device="cpu", trust_code=True, log=heard.append)
    (judge,) = load_judges([str(path)], setup)
    assert any("takes a batch of 1 only" in line for line in heard)
    images = torch.rand(5, *data.MNIST_SHAPE.dims)
    with torch.no_grad():
        alone = torch.cat([script(image[None]) for image in images]).log_softmax(1)
    assert torch.allclose(judge.classifier.log_probabilities(images), alone, atol=1e-5)
