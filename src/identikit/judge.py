"""How recognisable is an identikit? Independent models and real digits are asked.

An identikit made for one network may be that network's private code rather than a digit. Two
tests of that:

* *transfer*: models trained independently (another seed of the same architecture, an MLP, the
  linear softmax model) classify the identikits; the share each calls the intended digit is its
  agreement, and a digit-by-digit matrix shows what it sees instead (the idea of transferability
  from the adversarial-examples literature, Szegedy et al. 2014; Papernot et al. 2016);
* *nearest neighbour*: the closest real training digit in pixel space (Euclidean), and the
  distances to the closest digit of the intended class and of any other class.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.classifier import Classifier
from identikit.data import default_root, load_dataset
from identikit.errors import CheckpointError, IdentikitError
from identikit.models.checkpoint import load_checkpoint
from identikit.records import RESULTS_FILE, read_identikits, read_results
from identikit.training import train


@dataclass(frozen=True)
class JudgeSpec:
    """An independently trained judge: architecture and seed (0 is the demo's models' seed)."""

    name: str
    architecture: str
    seed: int


JUDGES = {
    "cnn-seed1": JudgeSpec("cnn-seed1", "cnn", 1),
    "mlp": JudgeSpec("mlp", "mlp", 1),
    "softmax": JudgeSpec("softmax", "softmax", 1),
}


def judge_checkpoint(
    spec: JudgeSpec, *, dataset: str, root: str | os.PathLike[str] | None, cache: Path, device: str
) -> Path:
    """The judge's checkpoint, trained with default settings on first use and cached."""
    path = cache / f"{dataset}-{spec.architecture}-seed{spec.seed}.pt"
    if path.is_file():
        try:
            load_checkpoint(path)
            return path
        except CheckpointError:
            pass  # an unreadable cache entry is trained again
    print(
        f"training judge {spec.name} ({spec.architecture}, seed {spec.seed}) ...",
        file=sys.stderr,
        flush=True,
    )
    train(
        spec.architecture,
        dataset=dataset,
        root=root,
        seed=spec.seed,
        device=device,
        out=path,
        progress=False,
    )
    return path


def load_sweep(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """A sweep's validated results record, images (N, 28, 28) and intended digits (N,)."""
    path = Path(folder)
    if not os.path.lexists(path / RESULTS_FILE):
        raise IdentikitError(f"{path} holds no finished sweep (no {RESULTS_FILE})")
    results = read_results(path)
    images, digits = read_identikits(path, results)
    return results, images, digits


def transfer(classifier: Classifier, images: np.ndarray, digits: np.ndarray) -> dict[str, Any]:
    """The share of identikits a judge calls their digit, and the digit-by-digit matrix."""
    pixels = torch.from_numpy(images).unsqueeze(1)
    predicted = classifier.probabilities(pixels).argmax(1).cpu().numpy()
    classes = classifier.num_classes
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (digits, predicted), 1)
    return {
        "agreement": float((predicted == digits).mean()) if len(digits) else 0.0,
        "matrix": matrix.tolist(),
    }


def nearest_neighbours(
    images: np.ndarray,
    digits: np.ndarray,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    block: int = 256,
) -> dict[str, Any]:
    """Nearest real training digit of every identikit, in Euclidean pixel distance."""
    real = torch.from_numpy(train_images.reshape(len(train_images), -1)).float().div_(255.0)
    labels = torch.from_numpy(train_labels.astype(np.int64))
    real_norms = real.pow(2).sum(1)
    same, other, nearest_label = [], [], []
    for start in range(0, len(images), block):
        query = torch.from_numpy(images[start : start + block].reshape(-1, 784))
        wanted = torch.from_numpy(digits[start : start + block])
        # ||a - b||^2 = |a|^2 - 2 a.b + |b|^2, for all pairs at once.
        distances = query.pow(2).sum(1, keepdim=True) - 2 * query @ real.T + real_norms
        distances = distances.clamp_(min=0).sqrt_()
        mine = labels.view(1, -1) == wanted.view(-1, 1)
        same.append(distances.masked_fill(~mine, float("inf")).min(1).values)
        other.append(distances.masked_fill(mine, float("inf")).min(1).values)
        nearest_label.append(labels[distances.argmin(1)])
    own, rest = torch.cat(same), torch.cat(other)
    hits = torch.cat(nearest_label).numpy() == digits
    return {
        "share": float(hits.mean()) if len(hits) else 0.0,
        "distance_own_class": own.tolist(),
        "distance_other_classes": rest.tolist(),
        "nearest_label": torch.cat(nearest_label).tolist(),
    }


def judge_sweep(
    folder: str | os.PathLike[str],
    *,
    judges: list[str],
    dataset: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    cache: Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Every judge's verdict and the nearest-neighbour test for the identikits of a sweep."""
    results, images, digits = load_sweep(folder)
    unknown = [j for j in judges if j not in JUDGES]
    if unknown:
        raise IdentikitError(f"unknown judge {unknown[0]!r}; known: {', '.join(JUDGES)}")
    cache = cache or default_root() / "judges"
    verdicts: dict[str, Any] = {}
    for name in judges:
        path = judge_checkpoint(
            JUDGES[name], dataset=dataset, root=root, cache=cache, device=device
        )
        classifier = Classifier.from_checkpoint(path, device=device)
        if classifier.sha256 == results.get("model", {}).get("sha256"):
            continue  # the model that drew the identikits is no independent judge
        verdicts[name] = transfer(classifier, images, digits)
    train_images, train_labels = load_dataset(dataset, "train", root)
    neighbours = nearest_neighbours(images, digits, train_images, train_labels)
    return {
        "sweep": str(folder),
        "strategy": results.get("settings", {}).get("strategy"),
        "identikits": len(digits),
        "judges": {name: v["agreement"] for name, v in verdicts.items()},
        "nearest_neighbour": neighbours["share"],
        "transfer_matrices": {name: v["matrix"] for name, v in verdicts.items()},
        "median_distance_own_class": float(np.median(neighbours["distance_own_class"])),
        "median_distance_other_classes": float(np.median(neighbours["distance_other_classes"])),
        "nearest_label": neighbours["nearest_label"],
    }
