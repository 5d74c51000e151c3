"""How recognisable is an identikit? Independent models and real digits are asked.

An identikit made for one network may be that network's private code rather than a digit. Two
tests of that:

* *transfer*: models trained independently (another seed of the same architecture, an MLP, the
  linear softmax model) classify the identikits; the share each calls the intended digit is its
  agreement, and a digit-by-digit matrix shows what it sees instead (the idea of transferability
  from the adversarial-examples literature, Szegedy et al. 2014; Papernot et al. 2016);
* *nearest neighbour*: the closest real training digit in pixel space (Euclidean), and the
  distances to the closest digit of the intended class and of any other class.

A judge is a built-in name (trained on first use) or a model file of the user's own. A
``compare`` folder is judged sweep by sweep, with the same judges and real digits.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.errors import CheckpointError, IdentikitError
from identikit.base.folder_lock import locked_folder
from identikit.classifier import Classifier, load_classifier
from identikit.data.datasets import default_root, load_dataset
from identikit.models.checkpoint import load_checkpoint
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.records import RESULTS_FILE
from identikit.sweeps.result_files import COMPARE_FILE, compared_strategies, write_verdict
from identikit.training.trainer import TrainSpec, train


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


@dataclass(frozen=True)
class JudgeSetup:
    """Where judges and real digits come from, and how judges are loaded.

    ``dataset`` (in ``root``, default: where identikit keeps its data) trains the built-in
    judges and gives the nearest real digits; trained judges are cached in ``cache`` (default:
    ``<data root>/judges``); ``trust_code`` allows a TorchScript judge; ``log`` hears what takes
    time (a judge being trained).
    """

    dataset: str = "mnist"
    root: str | os.PathLike[str] | None = None
    cache: Path | None = None
    device: str = "auto"
    trust_code: bool = False
    log: Callable[[str], None] | None = None


def _file_token(dataset: str) -> str:
    """``dataset`` as one file-name part: ``idx:/data/x`` would otherwise make folders (and two
    folders could collide once cleaned, so a short hash of the full name is added)."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", dataset):
        return dataset
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip("_")[:40]
    return f"{clean}-{hashlib.sha256(dataset.encode()).hexdigest()[:10]}"


def judge_checkpoint(spec: JudgeSpec, setup: JudgeSetup) -> Path:
    """The judge's checkpoint, trained with default settings on first use and cached."""
    cache = setup.cache or default_root() / "judges"
    path = cache / f"{_file_token(setup.dataset)}-{spec.architecture}-seed{spec.seed}.pt"
    if path.is_file():
        try:
            load_checkpoint(path)
            return path
        except CheckpointError:
            pass  # an unreadable cache entry is trained again
    if setup.log is not None:
        setup.log(f"training judge {spec.name} ({spec.architecture}, seed {spec.seed}) ...")
    train(
        TrainSpec(
            spec.architecture,
            dataset=setup.dataset,
            root=setup.root,
            seed=spec.seed,
            device=setup.device,
        ),
        out=path,
        progress=False,
    )
    return path


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
    if images.shape[1:] != train_images.shape[1:]:
        raise IdentikitError(
            f"the identikits are {images.shape[1:]} images, the real digits "
            f"{train_images.shape[1:]}: the sweep's model was not trained on this dataset"
        )
    real = torch.from_numpy(train_images.reshape(len(train_images), -1)).float().div_(255.0)
    labels = torch.from_numpy(train_labels.astype(np.int64))
    real_norms = real.pow(2).sum(1)
    same, other, nearest = [], [], []
    for start in range(0, len(images), block):
        chunk = images[start : start + block]
        query = torch.from_numpy(chunk.reshape(len(chunk), -1))
        wanted = torch.from_numpy(digits[start : start + block])
        # ||a - b||^2 = |a|^2 - 2 a.b + |b|^2, for all pairs at once.
        distances = query.pow(2).sum(1, keepdim=True) - 2 * query @ real.T + real_norms
        distances = distances.clamp_(min=0).sqrt_()
        mine = labels.view(1, -1) == wanted.view(-1, 1)
        same.append(distances.masked_fill(~mine, float("inf")).min(1).values)
        other.append(distances.masked_fill(mine, float("inf")).min(1).values)
        nearest.append(distances.argmin(1))
    own, rest = torch.cat(same), torch.cat(other)
    index = torch.cat(nearest) if nearest else torch.zeros(0, dtype=torch.int64)
    hits = labels[index].numpy() == digits
    return {
        "share": float(hits.mean()) if len(hits) else 0.0,
        "distance_own_class": own.tolist(),
        "distance_other_classes": rest.tolist(),
        "nearest_label": labels[index].tolist(),
        "nearest_index": index.tolist(),
    }


@dataclass(frozen=True)
class Judge:
    """A model that classifies identikits: its name in verdicts, and the model itself."""

    name: str
    classifier: Classifier


def load_judges(names: Sequence[str], setup: JudgeSetup = JudgeSetup()) -> list[Judge]:
    """The judges named: built-in ones (trained on first use and cached) or model files.

    Any other entry that is an existing file is the user's own model (a checkpoint or ONNX
    file; TorchScript only with ``setup.trust_code``), named by its file name.
    """
    judges = []
    device = setup.device
    for entry in names:
        if entry in JUDGES:
            path = judge_checkpoint(JUDGES[entry], setup)
            judges.append(Judge(entry, load_classifier(path, device=device)))
        elif Path(entry).is_file():
            classifier = load_classifier(entry, device=device, trust_code=setup.trust_code)
            judges.append(Judge(Path(entry).name, classifier))
        else:
            raise IdentikitError(
                f"unknown judge {entry!r}: not a model file, nor one of {', '.join(JUDGES)}"
            )
    taken = [judge.name for judge in judges]
    twice = sorted({name for name in taken if taken.count(name) > 1})
    if twice:
        raise IdentikitError(f"--judges names {twice[0]} twice: verdicts are kept by name")
    return judges


def comparison_sweeps(folder: str | os.PathLike[str]) -> list[Path]:
    """The sweeps to judge in ``folder``: itself when it holds a sweep, or, for a ``compare``
    folder (one holding ``compare.json``), each strategy's sweep in it, in its order."""
    path = Path(folder)
    if os.path.lexists(path / RESULTS_FILE) or not os.path.lexists(path / COMPARE_FILE):
        return [path]  # a sweep, or a folder that read_sweep_folder will say holds none
    names = compared_strategies(path)
    # Only plain names of real subfolders: a hand-edited compare.json must not lead elsewhere.
    sweeps = [
        path / name
        for name in names
        if name not in ("", ".", "..")
        and Path(name).name == name
        and (path / name).is_dir()
        and not (path / name).is_symlink()
    ]
    if not sweeps:
        raise IdentikitError(f"{path / COMPARE_FILE} names no sweep folder in {path}")
    return sweeps


def judge_sweep(
    folder: str | os.PathLike[str], judges: Sequence[str], setup: JudgeSetup = JudgeSetup()
) -> dict[str, Any]:
    """Every judge's verdict and the nearest-neighbour test for the identikits of a sweep,
    the judges named as :func:`load_judges` takes them (nothing is written)."""
    read_sweep_folder(folder)  # a folder without a sweep is refused before any judge is trained
    loaded = load_judges(judges, setup)
    real = load_dataset(setup.dataset, "train", setup.root)
    return verdict(folder, loaded, dataset=setup.dataset, real=real)


def verdict(
    folder: str | os.PathLike[str],
    judges: Sequence[Judge],
    *,
    dataset: str,
    real: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """The judge.json record of a sweep: ``judges``' verdicts and the nearest digits of
    ``real``, the training split (images, labels) of ``dataset``."""
    sweep = read_sweep_folder(folder)
    results, images, digits = sweep.results, sweep.images, sweep.digits
    classes = int(results["model"]["classes"])
    verdicts: dict[str, Any] = {}
    for judge in judges:
        if judge.classifier.sha256 == results["model"].get("sha256"):
            continue  # the model that drew the identikits is no independent judge
        if judge.classifier.num_classes != classes:
            raise IdentikitError(
                f"judge {judge.name} has {judge.classifier.num_classes} classes; the "
                f"identikits of {folder} are of a model of {classes}"
            )
        verdicts[judge.name] = transfer(judge.classifier, images, digits)
    neighbours = nearest_neighbours(images, digits, *real)
    return {
        "sweep": str(folder),
        "strategy": results.get("settings", {}).get("strategy"),
        "identikits": len(digits),
        "dataset": dataset,
        "judges": {name: v["agreement"] for name, v in verdicts.items()},
        "nearest_neighbour": neighbours["share"],
        "transfer_matrices": {name: v["matrix"] for name, v in verdicts.items()},
        "median_distance_own_class": _median(neighbours["distance_own_class"]),
        "median_distance_other_classes": _median(neighbours["distance_other_classes"]),
        "nearest_label": neighbours["nearest_label"],
        "nearest_index": neighbours["nearest_index"],
    }


def judge_folders(
    sweeps: Sequence[Path],
    judges: Sequence[Judge],
    *,
    dataset: str = "mnist",
    root: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Judge each sweep and write its ``judge.json``, each under its folder's lock (not while
    another process works in it); the dataset is read once for all."""
    real = load_dataset(dataset, "train", root)
    verdicts = []
    for folder in sweeps:
        with locked_folder(folder, create=False):
            record = verdict(folder, judges, dataset=dataset, real=real)
            write_verdict(folder, record)
        verdicts.append(record)
    return verdicts


def _median(values: list[float]) -> float:
    """The median, and 0 for none (``np.median`` of nothing is NaN, which JSON cannot hold)."""
    return float(np.median(values)) if values else 0.0
