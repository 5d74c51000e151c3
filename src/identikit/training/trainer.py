"""Fitting and evaluating a classifier, independent of its architecture.

``fit`` runs Adam under a one-cycle learning-rate schedule (Smith & Topin 2017,
"Super-Convergence") with cross-entropy loss; ``evaluate`` gives accuracy, per-class accuracy
and the confusion matrix. ``train`` ties them to the dataset registry and checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from identikit.base.device import resolve_device
from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.data.datasets import checksums, get_spec, load_dataset
from identikit.engines.precision import bf16_supported, check_precision
from identikit.models import build_model, get_architecture
from identikit.models.checkpoint import save_checkpoint
from identikit.models.training_config import TrainConfig

EVAL_BATCH = 1000


def to_pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float pixels in [0, 1], shape (N, 1, 28, 28), on ``device``."""
    return torch.from_numpy(images).to(device).unsqueeze(1).float().div_(255.0)


@dataclass
class Evaluation:
    """Accuracy over a labelled set, per class, and the confusion matrix (rows: true class)."""

    accuracy: float
    per_class: list[float]
    confusion: list[list[int]]


def _evaluation(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> Evaluation:
    truth = labels.astype(np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    totals = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), totals, out=np.zeros(num_classes), where=totals > 0)
    accuracy = float(np.trace(confusion) / max(len(truth), 1))
    return Evaluation(accuracy, [float(a) for a in per_class], confusion.tolist())


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, *, device: torch.device | None = None
) -> Evaluation:
    """Evaluate ``model`` (in eval mode) on uint8 ``images`` and their ``labels``."""
    device = device or next(model.parameters()).device
    model.eval()
    num_classes = int(model(torch.zeros(1, 1, 28, 28, device=device)).shape[1])
    predictions = [
        model(to_pixels(images[start : start + EVAL_BATCH], device)).argmax(1).cpu()
        for start in range(0, len(images), EVAL_BATCH)
    ]
    predicted = torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)
    return _evaluation(predicted, labels, num_classes)


def evaluate_classifier(
    classifier: Classifier, images: np.ndarray, labels: np.ndarray
) -> Evaluation:
    """Evaluate any model behind a :class:`Classifier` (checkpoint, TorchScript, ONNX)."""
    if len(labels) and int(labels.max()) >= classifier.num_classes:
        raise IdentikitError(
            f"{classifier.name} has {classifier.num_classes} classes; the data "
            f"has labels up to {int(labels.max())}"
        )
    predictions = [
        classifier.log_probabilities(
            to_pixels(images[start : start + EVAL_BATCH], torch.device("cpu"))
        )
        .argmax(1)
        .cpu()
        for start in range(0, len(images), EVAL_BATCH)
    ]
    predicted = torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64)
    return _evaluation(predicted, labels, classifier.num_classes)


def one_cycle(total_steps: int, warmup: float = 0.25) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up to 1, then cosine decay to 0.

    The one-cycle policy of Smith & Topin (2017); unlike torch's ``OneCycleLR`` it is defined
    for any number of steps, down to one.
    """
    ramp = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = (step - ramp) / max(1, total_steps - ramp)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def training_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: what ``precision`` (auto, fp32 or bf16) means on ``device``."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    check_precision(precision, device)
    return precision


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


def fit(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on uint8 ``images``; return the mean loss of each epoch.

    ``on_epoch(epoch, mean_loss)`` is called after each epoch (e.g. to evaluate). Batches are
    drawn by a generator seeded with ``seed``, so the same seed gives the same model on CPU.
    """
    # ``config`` checked its own settings when it was made (see TrainConfig).
    device = device or next(model.parameters()).device
    bf16 = training_precision(config.precision, device) == "bf16"
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]
    x_all, y_all = to_pixels(images, device), torch.from_numpy(labels.astype(np.int64)).to(device)
    steps_per_epoch = -(-len(x_all) // config.batch_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, one_cycle(config.epochs * steps_per_epoch)
    )
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_all), generator=generator).to(device)
        total, running = 0.0, None
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not progress,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )
        try:
            for step in bar:
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = x_all[index].contiguous(memory_format=memory_format)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = F.cross_entropy(model(x), y_all[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                schedule.step()
                value = loss.item()
                total += value
                running = value if running is None else 0.98 * running + 0.02 * value
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        finally:
            # Cleared before anything else is printed: an error line (or Ctrl-C's) would
            # otherwise land on the bar's line.
            bar.close()
        losses.append(total / steps_per_epoch)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    model.eval()
    return losses


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
    model: str = "cnn",
    *,
    dataset: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    precision: str | None = None,
    seed: int = 0,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a registered architecture on a dataset, evaluate it each epoch, optionally save it.

    Unset options take the architecture's own defaults. ``log`` receives one line per epoch.
    Settings and ``out`` are checked first: nothing is trained that could not be saved.
    """
    arch = get_architecture(model)
    base = arch.training
    config = dataclasses.replace(
        base,
        epochs=base.epochs if epochs is None else epochs,
        batch_size=base.batch_size if batch_size is None else batch_size,
        lr=base.lr if lr is None else lr,
        precision=base.precision if precision is None else precision,
    )
    if out is not None:
        check_output_file(out)
    torch_device = resolve_device(device)
    config = dataclasses.replace(
        config, precision=training_precision(config.precision, torch_device)
    )
    train_x, train_y = load_dataset(dataset, "train", root)
    test_x, test_y = load_dataset(dataset, "test", root)
    torch.manual_seed(seed)
    net = build_model(model, len(get_spec(dataset).class_names)).to(torch_device)
    accuracies: list[float] = []
    started = time.perf_counter()

    def after_epoch(epoch: int, loss: float) -> None:
        accuracies.append(evaluate(net, test_x, test_y, device=torch_device).accuracy)
        if log is not None:
            accuracy = accuracies[-1]
            log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}, test accuracy {accuracy:.2%}")
        net.train()

    with _threads(config.threads if torch_device.type == "cpu" else None):
        fit(
            net,
            train_x,
            train_y,
            config,
            seed=seed,
            device=torch_device,
            progress=progress,
            on_epoch=after_epoch,
        )
    seconds = time.perf_counter() - started
    net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    result = TrainResult(net, model, accuracies[-1], config.epochs, seed, seconds, config)
    if out is not None:
        save_checkpoint(
            out,
            net,
            architecture=model,
            metadata={
                "dataset": dataset,
                "test_accuracy": result.test_accuracy,
                "epochs": config.epochs,
                "seed": seed,
                "batch_size": config.batch_size,
                "lr": config.lr,
                "precision": config.precision,
                "data_checksums": checksums(dataset),
                "torch_version": str(torch.__version__),
                "seconds": seconds,
            },
        )
    return result
