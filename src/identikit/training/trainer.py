"""Training a registered architecture on a dataset into a checkpoint.

``train`` ties fitting (:mod:`identikit.training.fitting`: Adam under a one-cycle schedule) and
evaluating (:mod:`identikit.training.evaluation`) to the dataset registry and checkpoints: a
:class:`TrainSpec` says what one run trains, on what, with which changes to the architecture's
own recipe (:class:`~identikit.models.training_config.TrainConfig`).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
        """The architecture's recipe with this run's changes, checked (see TrainConfig)."""
        base = get_architecture(self.model).training
        return dataclasses.replace(
            base,
            epochs=base.epochs if self.epochs is None else self.epochs,
            batch_size=base.batch_size if self.batch_size is None else self.batch_size,
            lr=base.lr if self.lr is None else self.lr,
            precision=base.precision if self.precision is None else self.precision,
        )


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


def train(
    spec: TrainSpec | str = "cnn",
    *,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a registered architecture on a dataset, evaluate it each epoch, optionally save it.

    ``spec`` is a :class:`TrainSpec`, or an architecture's name to train it on MNIST with its
    own recipe. ``log`` receives one line per epoch. Settings and ``out`` are checked first:
    nothing is trained that could not be saved.
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
    result = TrainResult(net, spec.model, accuracies[-1], config.epochs, spec.seed, seconds, config)
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
