"""Training: fit is deterministic with a seed and closes its bar on failure, train ties a recipe to
a dataset and a checkpoint and checks its settings and its output file before any work, and
evaluate counts right."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from tqdm import tqdm

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.data import datasets as data
from identikit.data.datasets import MNIST_SHAPE
from identikit.data.images import load_images
from identikit.models import build_model, get_architecture
from identikit.models.checkpoint import load_checkpoint
from identikit.models.training_config import TrainConfig
from identikit.training import fitting, trainer
from identikit.training.evaluation import Scored, evaluate, evaluate_classifier
from identikit.training.fitting import FitHooks, fit, one_cycle
from identikit.training.trainer import TrainSpec, check_output_file, train
from tests.helpers import NAN, assert_refused, run_main

QUIET = FitHooks(progress=False)


@pytest.fixture(scope="module")
def mnist_slice() -> tuple[np.ndarray, np.ndarray]:
    """The first 600 MNIST training digits and their labels."""
    images, labels = data.load_dataset("mnist", "train")
    return images[:600], labels[:600]


def weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def fitted(seed: int, examples: tuple[np.ndarray, np.ndarray]) -> tuple[nn.Module, list[float]]:
    torch.manual_seed(0)  # the same initial weights every time
    model = build_model("softmax")
    config = TrainConfig(epochs=2, batch_size=50, lr=5e-3)
    losses = fit(model, *examples, config, seed=seed, hooks=QUIET)
    return model, losses


@pytest.mark.mnist
def test_fit_on_real_digits_is_deterministic_with_a_seed(
    mnist_slice: tuple[np.ndarray, np.ndarray],
) -> None:
    (a, losses_a), (b, losses_b) = fitted(4, mnist_slice), fitted(4, mnist_slice)
    assert torch.equal(weights(a), weights(b)) and losses_a == losses_b
    assert losses_a[1] < losses_a[0]
    other, _ = fitted(5, mnist_slice)  # another order of batches
    assert not torch.equal(weights(a), weights(other))
    assert not a.training  # left in eval mode
    assert evaluate(a, *mnist_slice).accuracy > 0.8


@pytest.mark.mnist
def test_fit_calls_back_after_each_epoch(mnist_slice: tuple[np.ndarray, np.ndarray]) -> None:
    seen: list[tuple[int, float]] = []
    model = build_model("softmax")
    config = TrainConfig(epochs=3, batch_size=200, lr=1e-3)
    hooks = FitHooks(progress=False, on_epoch=lambda epoch, loss: seen.append((epoch, loss)))
    losses = fit(model, *mnist_slice, config, hooks=hooks)
    assert [e for e, _ in seen] == [1, 2, 3] and [loss for _, loss in seen] == losses


def test_losses_read_every_few_steps_sum_as_read_after_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The device is waited for every READ_EVERY steps, not every step; the epoch's sum and the
    bar's running mean are those of reading each loss as it comes."""
    losses = torch.rand(2 * fitting.READ_EVERY + 7, generator=torch.Generator().manual_seed(0))
    batches = iter([(torch.zeros(1), torch.zeros(1))] * len(losses))
    steps = iter(losses)
    shown: list[str] = []
    monkeypatch.setattr(tqdm, "set_postfix", lambda _bar, **kw: shown.append(kw["loss"]))
    total = fitting._epoch(
        lambda x, y: next(steps), batches, len(losses), desc="e", hooks=FitHooks(progress=True)
    )
    expected, running, every = 0.0, math.nan, []
    for index, value in enumerate(losses.tolist()):
        expected += value
        running = value if index == 0 else 0.98 * running + 0.02 * value
        if index % fitting.READ_EVERY == 0:
            every.append(f"{running:.4f}")
    assert total == expected and shown == every and len(shown) == 3


class Failing(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_training_bar_is_closed_when_training_fails() -> None:
    images = np.zeros((8, 28, 28), np.uint8)
    labels = np.zeros(8, np.uint8)
    with pytest.raises(RuntimeError, match="boom"):
        fit(Failing(), images, labels, TrainConfig(epochs=1, batch_size=4, lr=1e-3))
    assert not [bar for bar in getattr(tqdm, "_instances", ()) if not bar.disable]


def test_train_is_deterministic_and_records_its_run(tiny_dataset: Path, tmp_path: Path) -> None:
    spec = TrainSpec("softmax", dataset="tiny", root=tiny_dataset, epochs=2, seed=3, device="cpu")
    lines: list[str] = []
    first = train(spec, out=tmp_path / "a.pt", progress=False, log=lines.append)
    second = train(spec, progress=False)
    assert torch.equal(weights(first.model), weights(second.model))
    assert first.test_accuracy == second.test_accuracy and first.epochs == 2 and first.seed == 3
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    model, meta = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(weights(model), weights(first.model))
    assert meta["architecture"] == "softmax" and meta["input_shape"] == MNIST_SHAPE
    assert (meta["dataset"], meta["epochs"], meta["seed"]) == ("tiny", 2, 3)
    assert meta["test_accuracy"] == first.test_accuracy
    recipe = get_architecture("softmax").training
    assert first.config.batch_size == recipe.batch_size and first.config.lr == recipe.lr


def test_train_spec_takes_the_architectures_recipe_unless_told() -> None:
    recipe = get_architecture("cnn").training
    assert TrainSpec().config() == recipe
    assert TrainSpec(epochs=7, lr=0.5).config() == TrainConfig(
        **{**recipe.__dict__, "epochs": 7, "lr": 0.5}
    )
    with pytest.raises(IdentikitError, match="--batch-size must be a whole number >= 1"):
        TrainSpec(batch_size=0).config()
    with pytest.raises(IdentikitError, match="unknown model architecture 'resnet'"):
        train(TrainSpec("resnet"))


def test_training_uses_the_recipes_thread_count_and_restores_it(tiny_dataset: Path) -> None:
    """The linear model trains on one thread (its batches are too small to split; a busy
    second core made two threads three times slower); the process's count is restored."""
    assert get_architecture("softmax").training.threads == 1
    seen: list[int] = []
    before = torch.get_num_threads()
    train(
        # The recipe's threads are the CPU's: a GPU's training leaves them alone.
        TrainSpec("softmax", dataset="tiny", root=tiny_dataset, epochs=1, device="cpu"),
        progress=False,
        log=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_train_library_refuses_nan_before_reading_data(tmp_path: Path) -> None:
    # A dataset that does not exist: the learning rate must be refused before it is looked for.
    with pytest.raises(IdentikitError, match="--lr must be a finite number"):
        missing = "idx:" + str(tmp_path / "none")
        train(TrainSpec("softmax", dataset=missing, lr=NAN))


def _unwritable_outputs(tmp_path: Path) -> list[tuple[Path, str]]:
    folder = tmp_path / "folder"
    folder.mkdir()
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    return [(folder, "is a folder"), (plain / "sub" / "m.pt", "is not a folder")]


def test_train_checks_out_before_training(
    capsys: pytest.CaptureFixture[str], tiny_dataset: Path, tmp_path: Path
) -> None:
    for out, why in _unwritable_outputs(tmp_path):
        args = ("train", "--model", "softmax", "--dataset", "tiny", "--root", str(tiny_dataset))
        result = run_main(capsys, *args, "--out", str(out), "--epochs", "1", "--no-progress")
        assert_refused(result, "identikit: error: --out", why)
        assert result[1] == "", "trained before refusing the output"


def test_train_library_checks_out_before_reading_data(tmp_path: Path) -> None:
    for out, why in _unwritable_outputs(tmp_path):
        with pytest.raises(IdentikitError, match=f"--out .*{why}"):
            train(TrainSpec("softmax", dataset="idx:" + str(tmp_path / "none")), out=out)


def test_train_output_in_a_new_folder_is_fine(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "new" / "deeper" / "m.pt").name == "m.pt"
    assert not (tmp_path / "new").exists()  # checked, not made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_train_refuses_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(IdentikitError, match="cannot write there"):
            check_output_file(folder / "m.pt")
    finally:
        folder.chmod(0o700)


def test_check_output_file_refuses_what_it_could_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IdentikitError, match="is a folder; name the file"):
        check_output_file(folder)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(IdentikitError, match="is not a regular file; refusing to replace it"):
        check_output_file(pipe)
    plain = tmp_path / "plain.txt"
    plain.write_text("a file, not a folder")
    with pytest.raises(IdentikitError, match=r"plain\.txt is not a folder"):
        check_output_file(plain / "sub" / "m.pt")
    assert check_output_file(tmp_path / "new" / "m.pt") == tmp_path / "new" / "m.pt"
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "old.pt"
    existing.write_bytes(b"old")
    assert check_output_file(existing) == existing and existing.read_bytes() == b"old"


class Always(nn.Module):
    """Predicts ``label`` for every image (a parameter, so that it has a device)."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.eye(10)[label])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(x.shape[0], 10) + 0 * x.flatten(1)[:, :1]


def test_evaluate_counts_right() -> None:
    images = np.zeros((6, *MNIST_SHAPE.dims[1:]), np.uint8)
    labels = np.array([3, 3, 3, 1, 2, 2])
    result = evaluate(Always(3), images, labels)
    assert result.accuracy == 0.5
    assert result.per_class[3] == 1.0 and result.per_class[1] == 0.0 and result.per_class[0] == 0
    confusion = np.array(result.confusion)
    assert confusion.shape == (10, 10) and confusion.sum() == 6
    assert confusion[3, 3] == 3 and confusion[2, 3] == 2 and confusion[1, 3] == 1
    # An empty set has no accuracy: refused, never reported as 0.00% (issue 28, case 7).
    with pytest.raises(IdentikitError, match="nothing to evaluate on: 0 images"):
        evaluate(Always(3), images[:0], labels[:0])


@pytest.mark.mnist
def test_evaluate_classifier_agrees_with_evaluate(
    mnist_slice: tuple[np.ndarray, np.ndarray],
) -> None:
    model, _ = fitted(4, mnist_slice)
    direct = evaluate(model, *mnist_slice)
    classifier = Classifier(model)
    through = evaluate_classifier(classifier, *mnist_slice)
    assert through.confusion == direct.confusion and through.accuracy == direct.accuracy
    assert classifier.queries == 600
    with pytest.raises(IdentikitError, match="has 10 classes; the data has labels up to 12"):
        evaluate_classifier(classifier, mnist_slice[0][:2], np.array([1, 12]))


def test_one_cycle_warms_up_then_decays() -> None:
    factor = one_cycle(100)
    assert factor(0) == pytest.approx(1 / 25) and factor(24) == 1.0
    assert factor(99) < 0.01 and all(factor(s) >= factor(s + 1) for s in range(24, 99))
    assert math.isclose(one_cycle(1)(0), 1.0)


needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="scikit-learn is not installed"
)


def test_train_on_shapes_records_its_colour_shape_and_classes(tmp_path: Path) -> None:
    out = tmp_path / "shapes.pt"
    spec = TrainSpec("softmax", dataset="shapes", epochs=1, device="cpu")
    result = train(spec, out=out, progress=False)
    assert 0 <= result.test_accuracy <= 1
    model, meta = load_checkpoint(out)
    assert meta["input_shape"] == ImageShape(3, 32, 32) and meta["num_classes"] == 10
    assert meta["dataset"] == "shapes" and len(meta["class_names"]) == 10
    assert "data_checksums" not in meta
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@needs_sklearn
def test_train_and_evaluate_on_the_8x8_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "digits.pt"
    spec = TrainSpec("softmax", dataset="sklearn-digits", epochs=3, device="cpu")
    result = train(spec, out=out, progress=False)
    # Measured: 78.7% after 3 epochs with seed 0; chance is 10%.
    assert result.test_accuracy > 0.6
    assert load_checkpoint(out)[1]["input_shape"] == ImageShape(1, 8, 8)
    args = ("evaluate", "--model", str(out), "--dataset", "sklearn-digits", "--json")
    code, stdout, _ = run_main(capsys, *args, "--backend", "eager", "--device", "cpu")
    assert code == 0
    assert json.loads(stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(
        result.test_accuracy
    )
    code, _, stderr = run_main(capsys, "evaluate", "--model", str(out), "--dataset", "shapes")
    assert code == 2 and "1x8x8" in stderr and "3x32x32" in stderr


# --- Training that diverges -----------------------------------------------------------------------


class Overflowing(nn.Module):
    """A linear model whose outputs overflow: its loss is nan from the first batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x.flatten(1)) * 1e39
        return out


class NanGradient(Overflowing):
    """Finite outputs and loss, but a nan gradient (0 x the infinite slope of a square root at
    0): the step that follows leaves nan weights, though the loss it returned was finite."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.linear.bias
        out: torch.Tensor = self.linear(x.flatten(1)) + 0 * torch.sqrt(bias - bias.detach()).sum()
        return out


def digits_like(n: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    return images, np.arange(n) % 10


def test_a_loss_that_stops_being_finite_stops_training_in_one_line() -> None:
    heard: list[int] = []
    hooks = FitHooks(progress=False, on_epoch=lambda epoch, _: heard.append(epoch))
    config = TrainConfig(epochs=2, batch_size=8, lr=1e-3)
    with pytest.raises(
        fitting.Diverged, match=r"^training diverged: the loss became nan in epoch 1"
    ):
        fit(Overflowing(), *digits_like(64), config, hooks=hooks)
    assert heard == []  # no epoch was reported as done
    assert not [bar for bar in getattr(tqdm, "_instances", ()) if not bar.disable]


def test_weights_that_stop_being_finite_stop_training() -> None:
    """One step: its loss, computed before the step, is finite; the weights after it are not."""
    config = TrainConfig(epochs=1, batch_size=8, lr=1e-3)
    with pytest.raises(fitting.Diverged, match=r"weight linear\.bias is not finite after epoch 1"):
        fit(NanGradient(), *digits_like(8), config, hooks=QUIET)


@pytest.mark.parametrize(
    ("lr", "said"),
    [
        ("1e308", "identikit: error: --lr must be a finite number in (0, 1]"),
        ("2", "identikit: error: --lr must be a finite number in (0, 1]"),
        ("nan", "argument --lr"),
        ("inf", "argument --lr"),
        ("0", "argument --lr"),
        ("-0.1", "argument --lr"),
    ],
)
def test_train_refuses_a_learning_rate_it_cannot_train_with(
    capsys: pytest.CaptureFixture[str], tiny_dataset: Path, tmp_path: Path, lr: str, said: str
) -> None:
    """One line, exit 2, before any training, and no checkpoint."""
    out = tmp_path / "m.pt"
    args = ("train", "--model", "softmax", "--dataset", "tiny", "--root", str(tiny_dataset))
    result = run_main(capsys, *args, "--out", str(out), f"--lr={lr}", "--epochs", "1")
    assert_refused(result, said, "--lr")
    assert result[1] == "" and list(tmp_path.iterdir()) == [tiny_dataset]


def test_train_that_diverges_saves_no_checkpoint(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train() with a model that overflows: one line, and no checkpoint written."""
    monkeypatch.setattr(trainer, "build_model", lambda *_: Overflowing())
    out = tmp_path / "m.pt"
    spec = TrainSpec("softmax", dataset="tiny", root=tiny_dataset, epochs=1, device="cpu")
    with pytest.raises(IdentikitError, match=r"training diverged: .*nothing was saved"):
        train(spec, out=out, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [tiny_dataset]


class Fixed(nn.Module):
    """Always the same scores, without parameters (a fixed function of the pixels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.eye(4)[1].expand(x.shape[0], 4) + 0 * x.flatten(1)[:, :1]


def test_evaluate_a_module_without_parameters_or_with_too_few_classes() -> None:
    """Before: StopIteration from ``next(model.parameters())``, and an IndexError from NumPy
    for a label the model has no output for."""
    images = np.zeros((3, 8, 8), np.uint8)
    assert evaluate(Fixed(), images, np.array([1, 1, 0])).accuracy == pytest.approx(2 / 3)
    with pytest.raises(IdentikitError, match="Fixed has 4 classes; the data has labels up to 7"):
        evaluate(Fixed(), images, np.array([1, 7, 0]))


def test_scored_says_the_test_split_or_the_held_out_share(tmp_path: Path) -> None:
    """What an evaluation scored, read from the dataset as its reader split it: a file's own
    test split, or a held-out sixth of a file without one."""
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (100, 8, 8), dtype=np.uint8), np.arange(100) % 2
    np.savez(tmp_path / "held.npz", images=images, labels=labels)
    np.savez(
        tmp_path / "given.npz",
        images=images,
        labels=labels,
        test_images=images[:30],
        test_labels=labels[:30],
    )
    held = Scored.of(load_images(f"npz:{tmp_path / 'held.npz'}"))
    assert held == Scored(17, held_out_of=100)
    assert held.record() == {
        "split": "held-out",
        "images": 17,
        "held_out_of": 100,
        "held_out_share": 0.1667,
    }
    given = Scored.of(load_images(f"npz:{tmp_path / 'given.npz'}"))
    assert given == Scored(30) and given.record() == {"split": "test", "images": 30}
    assert given.text() == "its test split of 30 images"
    assert Scored.of(load_images("shapes")).held_out_of is None  # generated with a test split


# --- Recipes that fit the data ------------------------------------------------------------------


def test_a_small_datasets_default_recipe_makes_enough_steps_to_converge() -> None:
    """scikit-learn's 1,497 training digits: the cnn's 2 epochs are 24 steps (87% measured);
    the default is lengthened to MIN_STEPS, in one line; epochs given are kept."""
    config, note = TrainSpec("cnn", "sklearn-digits").for_images(1497)
    assert config.epochs == 75 and config.epochs * 12 >= trainer.MIN_STEPS
    assert note == (
        "1,497 training images: 2 epochs would be 24 steps; training 75 epochs (900 steps) "
        "so it converges; --epochs overrides"
    )
    assert config == TrainConfig(**{**get_architecture("cnn").training.__dict__, "epochs": 75})
    assert TrainSpec("cnn", epochs=2).for_images(1497) == (
        TrainSpec("cnn", epochs=2).config(),
        None,
    )


@pytest.mark.parametrize("architecture", ["softmax", "cnn", "mlp", "colour-cnn", "resnet18"])
def test_recipes_on_mnist_and_cifar_sized_data_stay_as_they_are(architecture: str) -> None:
    """MNIST's and Fashion-MNIST's 60,000 training images for every architecture, and CIFAR-10's
    50,000 for those made for colour: each recipe as registered, nothing said."""
    recipe = get_architecture(architecture).training
    assert TrainSpec(architecture).for_images(60_000) == (recipe, None)
    if architecture in ("colour-cnn", "resnet18"):
        assert TrainSpec(architecture).for_images(50_000) == (recipe, None)


def test_train_lengthens_a_small_datasets_recipe_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run on a 1,000-image 8 x 8 npz: 833 training images (a sixth held out) in the
    softmax's batches of 100 are 9 steps an epoch. The minimum is lowered to 60 steps to keep
    the test short (the rule is the same at 900): 7 epochs make 63."""
    monkeypatch.setattr(trainer, "MIN_STEPS", 60)
    rng = np.random.default_rng(0)
    labels = np.arange(1000) % 10
    images = (rng.integers(0, 64, (1000, 8, 8)) + 19 * labels[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "small.npz", images=images, labels=labels)
    out = tmp_path / "small.pt"
    args = ("train", "--model", "softmax", "--dataset", f"npz:{tmp_path / 'small.npz'}")
    code, stdout, _ = run_main(capsys, *args, "--out", str(out), "--no-progress", "--device", "cpu")
    assert code == 0
    assert stdout.splitlines()[0] == (
        "833 training images: 5 epochs would be 45 steps; training 7 epochs (63 steps) so it "
        "converges; --epochs overrides"
    )
    assert "epoch 7/7" in stdout and load_checkpoint(out)[1]["epochs"] == 7
