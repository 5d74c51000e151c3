"""Training a registered architecture on a dataset into a checkpoint.

``train`` ties fitting (:mod:`identikit.training.fitting`: Adam under a one-cycle schedule) and
evaluating (:mod:`identikit.training.evaluation`) to the dataset registry and checkpoints: a
:class:`TrainSpec` says what one run trains, on what, with which changes to the architecture's
own recipe (:class:`~identikit.models.training_config.TrainConfig`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from identikit.base.arguments import instance_of
from identikit.base.device import resolve_device
from identikit.base.errors import IdentikitError
from identikit.data.datasets import DATASETS, checksums
from identikit.data.image_set import ImageSet
from identikit.data.images import load_images
from identikit.models import build_model, get_architecture
from identikit.models.checkpoint import save_checkpoint
from identikit.models.training_config import TrainConfig
from identikit.training.evaluation import evaluate
from identikit.training.fitting import FitHooks, fit, training_precision


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """PyTorch's CPU thread count set to ``threads`` (None: as it is) while the block runs."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(min(threads, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_output_file(out: str | os.PathLike[str]) -> Path:
    """Refuse, before any training, an ``out`` that a checkpoint could not be written to.

    The checkpoint is written atomically beside ``out`` at the end (its folder made if need
    be), so the nearest folder that exists must take a new file: that is tried, with a
    temporary file that vanishes, rather than guessed from permission bits.
    """
    target = Path(out)
    try:  # a folder that may not be searched raises PermissionError from exists()
        if target.is_dir():
            example = target / "model.pt"
            raise IdentikitError(f"--out {target} is a folder; name the file, e.g. {example}")
        if target.exists() and not target.is_file():
            raise IdentikitError(f"--out {target} is not a regular file; refusing to replace it")
        folder = target.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise IdentikitError(f"--out {target}: {folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        why = exc.strerror or exc
        raise IdentikitError(f"--out {target}: cannot write there: {why}") from None
    return target


# The fewest optimisation steps a default recipe makes. Each architecture's recipe was tuned on
# the data it was made for, where the shortest, the cnn's 2 epochs of MNIST's 60,000 images in
# batches of 128, is 938 steps: below about that, one-cycle's warm-up and decay leave the model
# half-trained (the cnn's 2 epochs of scikit-learn's 1,497 training digits, 24 steps, reach
# 87%; 20 epochs, 240 steps, 99.0%; 75 epochs, 900 steps, 99.3%). Every recipe on MNIST's and
# Fashion-MNIST's 60,000 images makes more, and so do the colour recipes on CIFAR-10's 50,000,
# so they stay as they are.
MIN_STEPS = 900


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimisation steps in one epoch over ``images`` (the last batch may be short)."""
    return -(-images // batch_size)


def converging_epochs(config: TrainConfig, images: int) -> int:
    """The recipe's epochs, or, where those make fewer than MIN_STEPS steps over ``images``
    training images, the fewest epochs that make at least MIN_STEPS."""
    per_epoch = steps_per_epoch(images, config.batch_size)
    if config.epochs * per_epoch >= MIN_STEPS:
        return config.epochs
    return math.ceil(MIN_STEPS / per_epoch)


def scaling_note(config: TrainConfig, images: int, epochs: int) -> str:
    """The one line that says a default recipe was lengthened for a small dataset, and why."""
    per_epoch = steps_per_epoch(images, config.batch_size)
    return (
        f"{images:,} training images: {config.epochs} epochs would be "
        f"{config.epochs * per_epoch:,} steps; training {epochs} epochs ({epochs * per_epoch:,} "
        "steps) so it converges; --epochs overrides"
    )


@dataclass(frozen=True)
class TrainSpec:
    """One training run: the architecture (``model``), the dataset (any spec
    :func:`~identikit.data.images.load_images` takes, and the folder ``root`` that holds the IDX
    datasets), changes to the architecture's own recipe (None: its own), the seed and the
    device (``auto``, ``cpu``, ``cuda``)."""

    model: str = "cnn"
    dataset: str = "mnist"
    root: str | os.PathLike[str] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    precision: str | None = None
    seed: int = 0
    device: str = "auto"

    def config(self) -> TrainConfig:
        """The architecture's recipe with this run's changes, checked (see TrainConfig); its
        epochs before :meth:`for_images` fits them to the data."""
        base = get_architecture(self.model).training
        return dataclasses.replace(
            base,
            epochs=base.epochs if self.epochs is None else self.epochs,
            batch_size=base.batch_size if self.batch_size is None else self.batch_size,
            lr=base.lr if self.lr is None else self.lr,
            precision=base.precision if self.precision is None else self.precision,
        )

    def for_images(self, images: int) -> tuple[TrainConfig, str | None]:
        """The recipe for ``images`` training images, and the line that says so where the
        default epochs were lengthened to make MIN_STEPS steps (never when epochs are given:
        a run asked for is the run made)."""
        config = self.config()
        if self.epochs is not None:
            return config, None
        epochs = converging_epochs(config, images)
        if epochs == config.epochs:
            return config, None
        return dataclasses.replace(config, epochs=epochs), scaling_note(config, images, epochs)


@dataclass
class TrainResult:
    """A trained model and what was recorded about it."""

    model: nn.Module
    architecture: str
    test_accuracy: float
    epochs: int
    seed: int
    seconds: float
    config: TrainConfig
    # The line said where the default epochs were lengthened for a small dataset; else None.
    scaled: str | None = None


def train(
    spec: TrainSpec | str = "cnn",
    *,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a registered architecture on a dataset, evaluate it each epoch, optionally save it.

    ``spec`` is a :class:`TrainSpec`, or an architecture's name to train it on MNIST with its
    own recipe, its epochs lengthened on a small dataset (see :meth:`TrainSpec.for_images`).
    ``log`` receives that line where it applies, then one line per epoch. Settings and ``out``
    are checked first: nothing is trained that could not be saved.
    """
    if not isinstance(spec, str):  # None named in one line, not an AttributeError from .config
        instance_of(spec, TrainSpec, "spec", "a TrainSpec or an architecture's name")
    spec = TrainSpec(spec) if isinstance(spec, str) else spec
    config = spec.config()
    if out is not None:
        check_output_file(out)
    device = resolve_device(spec.device)
    config = dataclasses.replace(config, precision=training_precision(config.precision, device))
    data = load_images(spec.dataset, spec.root)
    (train_x, train_y), (test_x, test_y) = data.split("train"), data.split("test")
    recipe, scaled = spec.for_images(len(train_x))
    config = dataclasses.replace(config, epochs=recipe.epochs)
    if scaled is not None and log is not None:
        log(scaled)
    torch.manual_seed(spec.seed)
    net = build_model(spec.model, data.classes, data.shape).to(device)
    accuracies: list[float] = []
    started = time.perf_counter()

    def after_epoch(epoch: int, loss: float) -> None:
        accuracies.append(evaluate(net, test_x, test_y, device=device).accuracy)
        if log is not None:
            accuracy = accuracies[-1]
            log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}, test accuracy {accuracy:.2%}")
        net.train()

    with _threads(config.threads if device.type == "cpu" else None):
        fit(net, train_x, train_y, config, seed=spec.seed, hooks=FitHooks(progress, after_epoch))
    seconds = time.perf_counter() - started
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    result = TrainResult(
        net, spec.model, accuracies[-1], config.epochs, spec.seed, seconds, config, scaled
    )
    if out is not None:
        _save(out, result, spec.dataset, data)
    return result


def _data_checksums(spec: str) -> dict[str, str] | None:
    """The MD5s of an IDX dataset's files; None for a dataset of another kind."""
    return checksums(spec) if spec in DATASETS or spec.startswith("idx:") else None


def _save(out: str | os.PathLike[str], result: TrainResult, dataset: str, data: ImageSet) -> None:
    """Write the trained model's checkpoint, with what the training recorded (``dataset``:
    the spec ``data`` was read from)."""
    config = result.config
    metadata = {
        "dataset": dataset,
        "test_accuracy": result.test_accuracy,
        "epochs": config.epochs,
        "seed": result.seed,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "precision": config.precision,
        "data_checksums": _data_checksums(dataset),
        "torch_version": str(torch.__version__),
        "seconds": result.seconds,
        "class_names": list(data.class_names),
    }
    if metadata["data_checksums"] is None:
        del metadata["data_checksums"]
    save_checkpoint(
        out,
        result.model,
        architecture=result.architecture,
        metadata=metadata,
        input_shape=data.shape,
    )
