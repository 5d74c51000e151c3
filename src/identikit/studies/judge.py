"""How recognisable is an identikit? Independent models and real images are asked.

An identikit made for one network may be that network's private code rather than an image of
its class. Two tests of that:

* *transfer*: models trained independently (another seed of the same architecture, an MLP, the
  linear softmax model) classify the identikits; the share each calls the intended class is its
  agreement, and a class-by-class matrix shows what it sees instead (the idea of
  transferability from the adversarial-examples literature, Szegedy et al. 2014; Papernot et
  al. 2016);
* *nearest neighbour*: the closest real training image in pixel space (Euclidean), and the
  distances to the closest image of the intended class and of any other class.

A judge is a built-in name (trained on first use, on the dataset the sweep's model was trained
on, for that dataset's image shape) or a model file of the user's own, read with the
conventions the setup gives for file judges. Every judge's own accuracy on the dataset's test
images is recorded beside its verdict, and a judge not worth hearing is refused or warned
about (:mod:`identikit.studies.judge_quality`); verdicts of different judges accumulate in
``judge.json`` (:mod:`identikit.studies.verdicts`). A ``compare`` folder is judged sweep by
sweep, with the same judges and real images. Identikits of any shape C x H x W
are judged, the shape read from the identikits themselves; a judge or a dataset of another
shape is refused in one line naming both.
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
from identikit.base.safe_files import read_json
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.data.datasets import MNIST_SHAPE, default_root
from identikit.data.image_set import ImageSet
from identikit.data.images import load_images
from identikit.engines.options import EngineOptions
from identikit.models.checkpoint import load_checkpoint
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing
from identikit.studies.judge_quality import (
    BUILT_IN,
    FILE,
    JudgeQuality,
    check_quality,
    check_trainable,
    judge_quality,
)
from identikit.studies.verdicts import identikits_sha256, merge_verdicts
from identikit.sweeps.folder import SweepFolder, read_sweep_folder
from identikit.sweeps.records import RESULTS_FILE
from identikit.sweeps.result_files import (
    COMPARE_FILE,
    JUDGE_FILE,
    check_judge,
    compared_strategies,
    write_verdict,
)
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
    # For colour data (the MLP and softmax see no shapes, only pixels: 15% on `shapes`).
    "colour-cnn-seed1": JudgeSpec("colour-cnn-seed1", "colour-cnn", 1),
    "colour-cnn-seed2": JudgeSpec("colour-cnn-seed2", "colour-cnn", 2),
}


@dataclass(frozen=True)
class JudgeSetup:
    """Where judges and real images come from, and how judges are loaded.

    ``dataset`` (any spec :func:`~identikit.data.images.load_images` reads; IDX datasets in
    ``root``, default: where identikit keeps its data) trains the built-in judges, for its
    image shape, and gives the nearest real images; trained judges are cached in ``cache``
    (default: ``<data root>/judges``); ``trust_code`` allows a TorchScript judge; ``log`` hears
    what takes time (a judge being trained) and warnings; ``epochs`` trains the built-in
    judges that many epochs instead of their architecture's own (None), for quick judges of
    small datasets. ``conventions`` and ``input_shape`` say how the model files named as judges
    take their images (one set for all of them; None: identikit's own, and the shape the file
    says), as every command's ``--mean``, ``--std``, ``--layout`` ... say it of ``--model``.
    """

    dataset: str = "mnist"
    root: str | os.PathLike[str] | None = None
    cache: Path | None = None
    device: str = "auto"
    trust_code: bool = False
    log: Callable[[str], None] | None = None
    epochs: int | None = None
    conventions: Preprocessing | None = None
    input_shape: ImageShape | None = None


def _file_token(dataset: str) -> str:
    """``dataset`` as one file-name part: ``idx:/data/x`` would otherwise make folders (and two
    folders could collide once cleaned, so a short hash of the full name is added)."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", dataset):
        return dataset
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset).strip("_")[:40]
    return f"{clean}-{hashlib.sha256(dataset.encode()).hexdigest()[:10]}"


def judge_file(spec: JudgeSpec, setup: JudgeSetup, shape: ImageShape = MNIST_SHAPE) -> str:
    """The judge's file name in the cache: the dataset, the image shape, the architecture, the
    seed, and the epochs when not the architecture's own. MNIST's shape is left out, so that
    the judges cached before other shapes existed (``mnist-cnn-seed1.pt``) are used still."""
    parts = [_file_token(setup.dataset)]
    if shape != MNIST_SHAPE:
        parts.append(str(shape))
    parts += [spec.architecture, f"seed{spec.seed}"]
    if setup.epochs is not None:
        parts.append(f"epochs{setup.epochs}")
    return "-".join(parts) + ".pt"


def _cached(path: Path, shape: ImageShape) -> bool:
    """Whether ``path`` holds a readable judge for images of ``shape`` (a file of another
    shape, written by hand or by an older identikit, is trained again)."""
    if not path.is_file():
        return False
    try:
        _, metadata = load_checkpoint(path)
    except CheckpointError:
        return False  # an unreadable cache entry is trained again
    return bool(metadata.get("input_shape") == shape)


def judge_checkpoint(spec: JudgeSpec, setup: JudgeSetup, shape: ImageShape = MNIST_SHAPE) -> Path:
    """The judge's checkpoint for ``setup.dataset``, whose images are of ``shape``: trained
    with the architecture's recipe (``setup.epochs`` epochs when given) on first use and
    cached."""
    cache = setup.cache or default_root() / "judges"
    path = cache / judge_file(spec, setup, shape)
    if _cached(path, shape):
        return path
    if setup.log is not None:
        setup.log(f"training judge {spec.name} ({spec.architecture}, seed {spec.seed}) ...")
    train(
        TrainSpec(
            spec.architecture,
            dataset=setup.dataset,
            root=setup.root,
            epochs=setup.epochs,
            seed=spec.seed,
            device=setup.device,
        ),
        out=path,
        progress=False,
    )
    return path


def channels_first(images: np.ndarray) -> np.ndarray:
    """Images ``(N, C, H, W)``; grey ``(N, H, W)`` ones (as sweeps keep them) given their one
    channel."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise IdentikitError(f"images must be (N, C, H, W) or (N, H, W), got {images.shape}")
    return images


def transfer(classifier: Classifier, images: np.ndarray, digits: np.ndarray) -> dict[str, Any]:
    """The share of identikits a judge calls their digit, and the digit-by-digit matrix;
    ``images`` are ``(N, C, H, W)``, or ``(N, H, W)`` grey."""
    pixels = torch.from_numpy(channels_first(images))
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
    """Nearest real training image of every identikit, in Euclidean pixel distance (over all
    channels); images ``(N, C, H, W)``, or ``(N, H, W)`` grey, the identikits in [0, 1], the
    real ones uint8."""
    images, train_images = channels_first(images), channels_first(train_images)
    if images.shape[1:] != train_images.shape[1:]:
        ours, theirs = ImageShape.of(images.shape[1:]), ImageShape.of(train_images.shape[1:])
        raise IdentikitError(
            f"the identikits are {ours} images, the real ones {theirs}: the sweep's model "
            "was not trained on this dataset"
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
    """A model that classifies identikits: its name in verdicts, the model itself, and its
    file (None for a built-in judge)."""

    name: str
    classifier: Classifier
    file: str | None = None

    @property
    def kind(self) -> str:
        return FILE if self.file is not None else BUILT_IN


def load_judges(
    names: Sequence[str], setup: JudgeSetup = JudgeSetup(), shape: ImageShape | None = None
) -> list[Judge]:
    """The judges named: built-in ones (trained on first use and cached) or model files.

    Built-in judges are trained on ``setup.dataset``, whose images are of ``shape`` (None: read
    from the dataset when a built-in judge is named). Any other entry that is an existing file
    is the user's own model (a checkpoint or ONNX file; TorchScript only with
    ``setup.trust_code``), read with ``setup.conventions`` and ``setup.input_shape``, named by
    its file name.
    """
    judges = []
    device = setup.device
    for entry in names:
        if entry in JUDGES:
            if shape is None:
                shape = load_images(setup.dataset, setup.root).shape
            path = judge_checkpoint(JUDGES[entry], setup, shape)
            judges.append(Judge(entry, load_classifier(path, device=device)))
        elif Path(entry).is_file():
            classifier = load_classifier(
                entry,
                device=device,
                preprocessing=setup.conventions,
                expect=Expected(input_shape=setup.input_shape),
                trust_code=setup.trust_code,
                # The log hears what loading says of the file (a model of batch 1, say).
                engine=EngineOptions(log=setup.log),
            )
            judges.append(Judge(Path(entry).name, classifier, file=entry))
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


def check_dataset_shape(sweep: SweepFolder, data: ImageSet) -> None:
    """Refuse a dataset whose images are not of the sweep's identikits' shape, naming both:
    its judges and real images could not be compared with them."""
    shape = sweep.shape
    if shape != data.shape:
        raise IdentikitError(
            f"the identikits of {sweep.path} are {shape} images, the images of "
            f"{data.name} {data.shape}: judge with the dataset the sweep's model was trained on"
        )


def judge_sweep(
    folder: str | os.PathLike[str], judges: Sequence[str], setup: JudgeSetup = JudgeSetup()
) -> dict[str, Any]:
    """Every judge's verdict and the nearest-neighbour test for the identikits of a sweep,
    the judges named as :func:`load_judges` takes them (nothing is written)."""
    # A folder without a sweep, or of another shape than the dataset, is refused before any
    # judge is trained.
    sweep = read_sweep_folder(folder)
    data = load_images(setup.dataset, setup.root)
    check_dataset_shape(sweep, data)
    loaded, qualities = heard_judges(judges, setup, data)
    record = verdict(
        folder,
        loaded,
        dataset=setup.dataset,
        real=data.split("train"),
        class_names=data.class_names,
    )
    return with_qualities(record, qualities)


def judge_all(
    folder: str | os.PathLike[str], judges: Sequence[str], setup: JudgeSetup = JudgeSetup()
) -> list[tuple[Path, dict[str, Any]]]:
    """Judge the sweep in ``folder``, or every sweep of a comparison's folder, and write each
    sweep's ``judge.json``: every sweep is read and its shape checked against the dataset's
    before any judge is trained; the comparison's folder is locked as well as its sweeps, so
    that no ``compare`` writes meanwhile. Returns (sweep folder, verdict) pairs."""
    sweeps = comparison_sweeps(folder)
    read = [read_sweep_folder(sweep) for sweep in sweeps]  # before any data is fetched
    data = load_images(setup.dataset, setup.root)
    for sweep in read:
        check_dataset_shape(sweep, data)
    loaded, qualities = heard_judges(list(judges), setup, data)
    with locked_folder(Path(folder), create=False):
        verdicts = judge_folders(
            sweeps, loaded, dataset=setup.dataset, data=data, qualities=qualities, log=setup.log
        )
    return list(zip(sweeps, verdicts, strict=True))


def heard_judges(
    names: Sequence[str], setup: JudgeSetup, data: ImageSet
) -> tuple[list[Judge], dict[str, JudgeQuality]]:
    """The judges named, each with its accuracy on the test images of ``data``: built-in
    judges refused before training where ``data`` is too small to train them, and after where
    they are below the accuracy a verdict needs; file judges below it warned about through
    ``setup.log`` (see :mod:`identikit.studies.judge_quality`)."""
    check_trainable(names, list(JUDGES), data)
    loaded = load_judges(names, setup, data.shape)
    qualities = {}
    given = (setup.conventions or Preprocessing()).describe()
    for judge in loaded:
        quality = judge_quality(judge.classifier, data, dataset=setup.dataset, file=judge.file)
        check_quality(judge.name, quality, setup.log, given)
        qualities[judge.name] = quality
    return loaded, qualities


def with_qualities(record: dict[str, Any], qualities: dict[str, JudgeQuality]) -> dict[str, Any]:
    """``record`` with ``judge_info``: the accuracy and kind of each judge that gave a verdict
    in it (not of one left out, the model that drew the identikits)."""
    info = {name: qualities[name].record() for name in record["judges"] if name in qualities}
    return {**record, "judge_info": info}


@dataclass(frozen=True)
class Identikits:
    """Identikits to judge: ``images`` ``(N, C, H, W)`` (or ``(N, H, W)`` grey) in [0, 1],
    the class each was made for (``digits``), how many classes the model that made them has,
    that model's SHA-256 (None: unknown) and where they are from (for messages)."""

    images: np.ndarray
    digits: np.ndarray
    classes: int
    drawn_by: str | None = None
    source: str = "the sweep"

    @property
    def shape(self) -> ImageShape:
        return ImageShape.of(channels_first(self.images).shape[1:])


def judge_identikits(
    identikits: Identikits, judges: Sequence[Judge], real: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """``judges``' verdicts on ``identikits`` and their nearest images among ``real`` (the
    training split, images and labels, of the dataset their model was trained on). A judge of
    other classes or another image shape is refused in one line naming both."""
    images, digits, shape = channels_first(identikits.images), identikits.digits, identikits.shape
    verdicts: dict[str, Any] = {}
    for judge in judges:
        if judge.classifier.sha256 == identikits.drawn_by:
            continue  # the model that drew the identikits is no independent judge
        if judge.classifier.num_classes != identikits.classes:
            raise IdentikitError(
                f"judge {judge.name} has {judge.classifier.num_classes} classes; the "
                f"identikits of {identikits.source} are of a model of {identikits.classes}"
            )
        if judge.classifier.info.input_shape != shape:
            raise IdentikitError(
                f"judge {judge.name} takes {judge.classifier.info.input_shape} images; the "
                f"identikits of {identikits.source} are {shape}"
            )
        verdicts[judge.name] = transfer(judge.classifier, images, digits)
    neighbours = nearest_neighbours(images, digits, *real)
    return {
        "judges": {name: v["agreement"] for name, v in verdicts.items()},
        "nearest_neighbour": neighbours["share"],
        "transfer_matrices": {name: v["matrix"] for name, v in verdicts.items()},
        "median_distance_own_class": _median(neighbours["distance_own_class"]),
        "median_distance_other_classes": _median(neighbours["distance_other_classes"]),
        "nearest_label": neighbours["nearest_label"],
        "nearest_index": neighbours["nearest_index"],
    }


def verdict(
    folder: str | os.PathLike[str],
    judges: Sequence[Judge],
    *,
    dataset: str,
    real: tuple[np.ndarray, np.ndarray],
    class_names: Sequence[str] = (),
) -> dict[str, Any]:
    """The judge.json record of a sweep: ``judges``' verdicts and the nearest images of
    ``real``, the training split (images, labels) of ``dataset``, whose ``class_names`` name
    the classes where the sweep's model names none."""
    sweep = read_sweep_folder(folder)
    results = sweep.results
    identikits = Identikits(
        sweep.images,
        sweep.digits,
        int(results["model"]["classes"]),
        drawn_by=results["model"].get("sha256"),
        source=str(folder),
    )
    # A model without names records the numbers: the dataset's names are better then.
    recorded = results["model"].get("class_names") or ()
    names = _named(recorded, identikits.classes) or _named(class_names, identikits.classes)
    return {
        "sweep": str(folder),
        "strategy": results.get("settings", {}).get("strategy"),
        "identikits": len(sweep.digits),
        "identikits_sha256": identikits_sha256(sweep.images, sweep.digits),
        "dataset": dataset,
        **({"class_names": list(names)} if names else {}),
        **judge_identikits(identikits, judges, real),
    }


def judge_folders(
    sweeps: Sequence[Path],
    judges: Sequence[Judge],
    *,
    dataset: str,
    data: ImageSet,
    qualities: dict[str, JudgeQuality] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Judge each sweep and write its ``judge.json``, each under its folder's lock (not while
    another process works in it), against the training images of ``data`` (read once for all
    by the caller, from the spec ``dataset``), with each judge's ``qualities``. The earlier
    verdicts of other judges on the same identikits are kept (``log`` hears of those dropped);
    the sweep's verdict returned is the one written, all judges' together."""
    real = data.split("train")
    named = [judge.name for judge in judges]
    verdicts = []
    for folder in sweeps:
        with locked_folder(folder, create=False):
            judged = verdict(
                folder, judges, dataset=dataset, real=real, class_names=data.class_names
            )
            _say_left_out(judged, named, log)
            record = with_qualities(judged, qualities or {})
            earlier = _earlier_verdict(folder, int(record_classes(folder)), log)
            record = merge_verdicts(earlier, record, named, log=log, where=str(folder / JUDGE_FILE))
            write_verdict(folder, record)
        verdicts.append(record)
    return verdicts


def _say_left_out(
    record: dict[str, Any], named: Sequence[str], log: Callable[[str], None] | None
) -> None:
    """Tell ``log`` of the judges named that gave no verdict: the model that drew the
    identikits is no independent judge of them."""
    for name in named:
        if name not in record["judges"] and log is not None:
            log(
                f"judge {name} is the model that drew the identikits of {record['sweep']}: left out"
            )


def record_classes(folder: Path) -> int:
    """The number of classes of the model that drew the sweep's identikits."""
    return int(read_sweep_folder(folder).results["model"]["classes"])


def _earlier_verdict(
    folder: Path, classes: int, log: Callable[[str], None] | None
) -> dict[str, Any] | None:
    """The sweep's judge.json as it stands (raw, once checked), or None where there is none
    or it cannot be read (said through ``log``: it is replaced)."""
    path = folder / JUDGE_FILE
    if not os.path.lexists(path):
        return None
    try:
        raw = read_json(path)
        check_judge(raw, path, classes)
    except IdentikitError as exc:
        if log is not None:
            log(f"{path}: replaced, its earlier verdicts unreadable ({exc})")
        return None
    return dict(raw)


def _named(names: Sequence[str], classes: int) -> list[str] | None:
    """``names`` where they are names of ``classes`` classes, not their numbers."""
    if len(names) != classes or list(names) == [str(c) for c in range(classes)]:
        return None
    return list(names)


def _median(values: list[float]) -> float:
    """The median, and 0 for none (``np.median`` of nothing is NaN, which JSON cannot hold)."""
    return float(np.median(values)) if values else 0.0
