"""Datasets as folders of pictures (``folder:DIR``), read with Pillow.

Two layouts, as torchvision's ``ImageFolder`` and Keras' ``image_dataset_from_directory``
expect them:

* ``DIR/<class>/<image>``: one subfolder per class, the sorted folder names being the class
  names; a fixed random sixth of the images is held out for testing;
* ``DIR/train/<class>/<image>`` and ``DIR/test/<class>/<image>``: the split given (a
  ``train`` folder alone, or a ``test`` folder without images, is split as above).

Every image must have the same size. Hidden files and files of other types (a README,
``Thumbs.db``) are skipped; a link that leads out of ``DIR`` is refused, like every file
identikit reads. A folder name that is not valid UTF-8 becomes a class name with the odd bytes
written as ``\\xff`` escapes, so every class name is text that can be printed, drawn and saved.

The pictures are read in two passes so that nothing is decoded before it is known to fit:
first every file's header (Pillow opens lazily: size and mode without the pixels), checked
against :data:`~identikit.base.limits.IMAGE_PIXELS` per picture and
:data:`~identikit.base.limits.DATASET_PIXELS` for the whole set, one size and a mode identikit
reads; then each picture is decoded straight into the dataset's array. Pillow's own
decompression-bomb check is set to the same per-picture limit and its warning made an error.

Pillow modes (https://pillow.readthedocs.io/en/stable/handbook/concepts.html#modes), each
converted to 8 bits or refused naming the file and its mode:

* grey: ``1``, ``L``, ``LA`` (alpha dropped) and 16-bit grey (``I;16``, ``I;16L``,
  ``I;16B``, ``I;16N``, and ``I`` read from a PNG, which older Pillows use for 16-bit PNGs):
  16 bits are scaled, ``v * 255 / 65535`` rounded, never clipped to 255;
* colour: ``RGB``, ``RGBA``, ``RGBa``, ``RGBX``, ``P``, ``PA`` (palettes expanded), ``CMYK``,
  ``YCbCr``, ``HSV``, converted to RGB by Pillow. Alpha is dropped and the stored colours kept,
  not blended onto a background, as torchvision's loader does (``convert("RGB")``);
* refused: ``F`` (floating point, NaN possible, no fixed range), ``I`` from any other format
  (32-bit integers, no fixed range), ``LAB`` (needs a colour profile) and any other mode.

The set is grey (one channel) when every picture is grey, else RGB (grey pictures repeated
in the three channels).
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from identikit.base.errors import DataError, IdentikitError
from identikit.base.limits import DATASET_PIXELS, IMAGE_PIXELS, SAMPLES, Limit
from identikit.base.safe_files import inside, read_regular
from identikit.base.shapes import ImageShape
from identikit.data.image_set import ImageSet, seeded_split

SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File types read as images (case ignored); others in a class folder are skipped."""

GREY_MODES = frozenset({"1", "L", "LA"})
"""8-bit (or 1-bit) grey modes, converted with Pillow's ``convert("L")``."""

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
"""Unsigned 16-bit grey, of either byte order: scaled to 8 bits here, not by Pillow (whose
``convert("L")`` clips every value above 255 to white)."""

COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "HSV"})
"""Modes Pillow converts to RGB itself (``convert("RGB")``)."""

REFUSED_MODES = {
    "F": "floating-point pixels, which have no fixed range (and may be NaN)",
    "I": "32-bit integer pixels, which have no fixed range",
    "LAB": "L*a*b* colour, which needs a colour profile to become RGB",
}
"""Why a mode Pillow opens is refused, where there is more to say than that it is unknown."""


@dataclass(frozen=True)
class Picture:
    """One image file as its header describes it, before any pixel is decoded."""

    file: Path
    label: int
    size: tuple[int, int]  # (width, height), as Pillow gives it
    mode: str
    kind: str  # "grey", "grey16" or "colour"


def load_folder_images(folder: Path, *, name: str | None = None) -> ImageSet:
    """The dataset in ``folder`` (either layout); ``name`` defaults to ``folder:<folder>``."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (folder:DIR wants one subfolder per class)")
    layout = [p.name for p in _subfolders(folder, folder)]
    split = layout in (["test", "train"], ["train"])
    classes = _class_folders(folder / "train" if split else folder, folder)
    names = _class_names(classes)
    with _pillow_pixel_limit(IMAGE_PIXELS.value):
        budget = _Budget(folder)
        train = _survey(classes, folder, budget)
        test: list[Picture] = []
        if "test" in layout and split:
            test = _survey(_test_folders(folder / "test", names, folder), folder, budget)
        images, labels = _decode(train + test, folder)
    if test:
        given = len(train)
        parts = (images[:given], labels[:given], images[given:], labels[given:])
    else:
        parts = seeded_split(images, labels)
    shape = ImageShape.of(images.shape[1:])
    return ImageSet(
        *parts,
        class_names=names,
        shape=shape,
        name=name or f"folder:{folder}",
        held_out=not test,
    )


def class_name(folder: Path) -> str:
    """A class folder's name as text that can always be printed, drawn and written as UTF-8.

    A name that is not valid UTF-8 reaches Python with lone surrogates (PEP 383), which
    matplotlib cannot draw and a UTF-8 file cannot hold. The bytes are shown as ``\\xff``
    escapes rather than U+FFFD, so two such folders keep two names.
    """
    raw = folder.name.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def _class_names(classes: list[Path]) -> tuple[str, ...]:
    names = tuple(class_name(p) for p in classes)
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"{classes[0].parent}: class folders {twice} have the same name once made "
            "printable; rename one of them"
        )
    return names


def _subfolders(folder: Path, root: Path) -> list[Path]:
    """The visible subfolders of ``folder``, sorted; one leading out of ``root`` is refused."""
    found = []
    for entry in _entries(folder):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not inside(entry, root):
            raise DataError(f"{entry}: a link that leads out of {root}; refusing to read it")
        found.append(entry)
    return found


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read {folder}: {exc.strerror or exc}") from None


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
    present = {class_name(p): p for p in _subfolders(folder, root)}
    extra = sorted(set(present) - set(names))
    if extra:
        raise DataError(f"{folder}: class folder(s) {extra} are not in the train folder")
    return [present.get(n, folder / n) for n in names]


class _Budget:
    """The pixels of a dataset's pictures counted as their headers are read, so that the whole
    set is refused before its first picture is decoded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = 0
        self.pixels = 0

    def add(self, count: int, pixels: int) -> None:
        self.images += count
        self.pixels += pixels
        _check(SAMPLES, self.images, str(self.root))
        _check(DATASET_PIXELS, self.pixels, f"{self.root} (its pictures together)")


def _check(limit: Limit, amount: int, subject: str) -> None:
    try:
        limit.check(amount, subject)
    except IdentikitError as exc:
        raise DataError(str(exc)) from None


def _survey(classes: list[Path], root: Path, budget: _Budget) -> list[Picture]:
    """Every image file of every class folder (a missing folder holds none), described from
    its header: one size for all, a mode identikit reads, within the pixel limits."""
    pictures: list[Picture] = []
    for label, folder in enumerate(classes):
        files = _entries(folder) if folder.is_dir() else []
        images = [f for f in files if not f.name.startswith(".") and f.suffix.lower() in SUFFIXES]
        if not images and folder.is_dir():
            raise DataError(f"{folder}: no image files ({', '.join(sorted(SUFFIXES))})")
        budget.add(len(images), 0)  # the count first: a million files are refused unread
        for file in images:
            picture = _header(file, root, label)
            budget.add(0, picture.size[0] * picture.size[1])
            pictures.append(picture)
    if pictures:
        _same_size(pictures, pictures[0])
    return pictures


def _same_size(pictures: list[Picture], first: Picture) -> None:
    for picture in pictures:
        if picture.size != first.size:
            (w, h), (fw, fh) = picture.size, first.size
            raise DataError(
                f"{picture.file} is {w}x{h} pixels but {first.file} is {fw}x{fh}; every image "
                "must have one size"
            )


def _header(file: Path, root: Path, label: int) -> Picture:
    """What ``file``'s header says: its size (within the limit per picture) and its mode."""
    picture = _open(file, root)
    width, height = picture.size
    _check(IMAGE_PIXELS, width * height, f"{file} ({width}x{height})")
    kind = _kind(file, picture)
    return Picture(file, label, picture.size, picture.mode, kind)


def _kind(file: Path, picture: Image.Image) -> str:
    """``grey``, ``grey16`` or ``colour``, by Pillow mode; any other mode is refused."""
    mode = picture.mode
    if mode in GREY_MODES:
        return "grey"
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and picture.format == "PNG"):
        return "grey16"  # a PNG holds at most 16 bits per sample, so its "I" is 0..65535
    if mode in COLOUR_MODES:
        return "colour"
    reason = REFUSED_MODES.get(mode, "a mode identikit does not read")
    raise DataError(
        f"{file}: Pillow mode {mode!r}, {reason}; save it as 8-bit grey (L), 16-bit grey "
        "(I;16) or RGB"
    )


def _open(file: Path, root: Path) -> Image.Image:
    """``file`` opened by Pillow, lazily: its header is read, its pixels are not."""
    try:
        data = read_regular(file, root=root)
    except IdentikitError as exc:
        raise DataError(str(exc)) from None
    with _pillow_errors(file):
        return Image.open(io.BytesIO(data))


@contextmanager
def _pillow_errors(file: Path) -> Iterator[None]:
    """Whatever Pillow raises on a bad ``file``, as one line naming it.

    Any exception: Pillow's decoders, handed a hostile file, fail in many ways (``SyntaxError``,
    ``struct.error``, ``IndexError``...), and each means only that this file cannot be read.
    """
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_too_many_pixels(file, exc)) from None
    except Exception as exc:
        raise DataError(f"{file}: not an image Pillow can read ({exc})") from None


def _too_many_pixels(file: Path, exc: Exception) -> str:
    """The one line for a picture Pillow's own check refused (it reports only its pixels)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(found[1]):,}" if found else "too many"
    return (
        f"{file}: {pixels} pixels per image is over the limit of {IMAGE_PIXELS.value:,}, "
        f"refused before decoding it (set {IMAGE_PIXELS.variable} to lift it)"
    )


@contextmanager
def _pillow_pixel_limit(limit: int) -> Iterator[None]:
    """Pillow's decompression-bomb check set to ``limit`` and its warning made an error.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and raises only above twice that, so on its
    own a 144-million-pixel PNG is decoded with a warning. Both are refusals here; the old
    setting is restored afterwards (it is Pillow's global, so this is not thread-safe, like
    every change to it).
    """
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _decode(pictures: list[Picture], root: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, C, H, W)`` and int64 labels, each picture decoded straight into the
    array (never a second copy of the set)."""
    width, height = pictures[0].size
    grey = all(p.kind != "colour" for p in pictures)
    images = np.empty((len(pictures), 1 if grey else 3, height, width), dtype=np.uint8)
    for index, picture in enumerate(pictures):
        images[index] = _pixels(picture, root, grey)
    labels = np.array([p.label for p in pictures], dtype=np.int64)
    return images, labels


def _pixels(picture: Picture, root: Path, grey: bool) -> np.ndarray:
    """One picture as uint8 ``(C, H, W)``, read again and checked against its header."""
    image = _open(picture.file, root)
    if (image.size, image.mode) != (picture.size, picture.mode):
        raise DataError(f"{picture.file} changed while the dataset was read; read it again")
    with _pillow_errors(picture.file):
        image.load()
        if picture.kind == "grey16":
            return _scale_sixteen(np.asarray(image))[None]
        pixels = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
    return pixels[None] if grey else pixels.transpose(2, 0, 1)


def _scale_sixteen(values: np.ndarray) -> np.ndarray:
    """16-bit samples ``0..65535`` as 8 bits ``0..255``: ``v * 255 / 65535`` rounded, so
    ``257 * k`` becomes exactly ``k`` (65535 = 257 * 255) and nothing saturates."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)
