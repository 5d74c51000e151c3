"""Datasets as folders of pictures (``folder:DIR``), read with Pillow.

Two layouts, as torchvision's ``ImageFolder`` and Keras' ``image_dataset_from_directory``
expect them:

* ``DIR/<class>/<image>``: one subfolder per class, the sorted folder names being the class
  names; a fixed random sixth of the images is held out for testing;
* ``DIR/train/<class>/<image>`` and ``DIR/test/<class>/<image>``: the split given (a
  ``train`` folder alone, or a ``test`` folder without images, is split as above).

Every image must have the same size. The set is grey (one channel) when every image is grey
(Pillow modes ``1``, ``L``, ``LA``), else RGB (alpha dropped, palettes expanded). Hidden files
and files of other types (a README, ``Thumbs.db``) are skipped; a link that leads out of ``DIR``
is refused, like every file identikit reads.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from identikit.base.errors import DataError, IdentikitError
from identikit.base.limits import SAMPLES
from identikit.base.safe_files import inside, read_regular
from identikit.base.shapes import ImageShape
from identikit.data.image_set import ImageSet, seeded_split

SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File types read as images (case ignored); others in a class folder are skipped."""

GREY_MODES = frozenset({"1", "L", "LA"})

Pictures = list[tuple[Path, Image.Image, int]]
"""Each image file, its decoded picture and its class index."""


def load_folder_images(folder: Path, *, name: str | None = None) -> ImageSet:
    """The dataset in ``folder`` (either layout); ``name`` defaults to ``folder:<folder>``."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (folder:DIR wants one subfolder per class)")
    layout = [p.name for p in _subfolders(folder, folder)]
    split = layout in (["test", "train"], ["train"])
    classes = _class_folders(folder / "train" if split else folder, folder)
    names = tuple(p.name for p in classes)
    train = _read_pictures(classes, folder)
    test: Pictures = []
    if "test" in layout and split:
        test = _read_pictures(_test_folders(folder / "test", names, folder), folder)
    first = train[0]
    grey = all(picture.mode in GREY_MODES for _, picture, _ in train + test)
    images, labels = _arrays(train + test, first, grey)
    if test:
        given = len(train)
        parts = (images[:given], labels[:given], images[given:], labels[given:])
    else:
        parts = seeded_split(images, labels)
    shape = ImageShape.of(images.shape[1:])
    return ImageSet(*parts, class_names=names, shape=shape, name=name or f"folder:{folder}")


def _subfolders(folder: Path, root: Path) -> list[Path]:
    """The visible subfolders of ``folder``, sorted; one leading out of ``root`` is refused."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read {folder}: {exc.strerror or exc}") from None
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not inside(entry, root):
            raise DataError(f"{entry}: a link that leads out of {root}; refusing to read it")
        found.append(entry)
    return found


def _class_folders(folder: Path, root: Path) -> list[Path]:
    classes = _subfolders(folder, root)
    if len(classes) < 2:
        raise DataError(
            f"{folder}: {len(classes)} class folder(s); expected one subfolder of images per "
            "class, at least two"
        )
    return classes


def _test_folders(folder: Path, names: tuple[str, ...], root: Path) -> list[Path]:
    """The test split's class folders, in the training split's order (a class may lack test
    images; a class the training split lacks is refused)."""
    present = {p.name: p for p in _subfolders(folder, root)}
    extra = sorted(set(present) - set(names))
    if extra:
        raise DataError(f"{folder}: class folder(s) {extra} are not in the train folder")
    return [present.get(n, folder / n) for n in names]


def _read_pictures(classes: list[Path], root: Path) -> Pictures:
    """Every image of every class folder (a missing folder holds none)."""
    pictures: Pictures = []
    for label, folder in enumerate(classes):
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        images = [f for f in files if not f.name.startswith(".") and f.suffix.lower() in SUFFIXES]
        if not images and folder.is_dir():
            raise DataError(f"{folder}: no image files ({', '.join(sorted(SUFFIXES))})")
        SAMPLES.check(len(pictures) + len(images), str(root))
        pictures += [(file, _picture(file, root), label) for file in images]
    return pictures


def _picture(file: Path, root: Path) -> Image.Image:
    """One decoded picture (the first frame of an animation)."""
    try:
        data = read_regular(file, root=root)
    except IdentikitError as exc:
        raise DataError(str(exc)) from None
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: not an image Pillow can read ({exc})") from None
    return picture


def _arrays(
    pictures: Pictures, first: tuple[Path, Image.Image, int], grey: bool
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, C, H, W)`` and int64 labels; every picture has ``first``'s size."""
    size = first[1].size
    mode = "L" if grey else "RGB"
    channels = 1 if grey else 3
    images = np.empty((len(pictures), channels, size[1], size[0]), dtype=np.uint8)
    for index, (file, picture, _) in enumerate(pictures):
        if picture.size != size:
            raise DataError(
                f"{file} is {picture.size[0]}x{picture.size[1]} pixels but {first[0]} is "
                f"{size[0]}x{size[1]}; every image must have one size"
            )
        pixels = np.asarray(picture.convert(mode), dtype=np.uint8)
        images[index] = pixels[None] if grey else pixels.transpose(2, 0, 1)
    labels = np.array([label for _, _, label in pictures], dtype=np.int64)
    return images, labels
