"""folder:DIR datasets: real PNG, JPEG, BMP, GIF and TIFF files written with Pillow, both
layouts, every Pillow mode converted or refused, the pixel limits, and every folder identikit
refuses."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from identikit.base.errors import DataError
from identikit.base.shapes import ImageShape
from identikit.data.image_folders import load_folder_images
from tests.helpers import one_line_message


def _picture(path: Path, value: int, *, mode: str = "L", size: tuple[int, int] = (6, 4)) -> None:
    """An image of one grey level (or that level in each RGB channel, shifted per channel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        Image.new("L", size, value).save(path)
    else:
        Image.new("RGB", size, (value, (value + 50) % 256, (value + 100) % 256)).save(path)


def _classes(
    folder: Path, counts: dict[str, int], *, mode: str = "L", size: tuple[int, int] = (6, 4)
) -> Path:
    for index, (name, count) in enumerate(counts.items()):
        for i in range(count):
            _picture(folder / name / f"{i:03d}.png", 20 * index + i, mode=mode, size=size)
    return folder


def test_grey_classes_are_read_in_order_and_split(tmp_path: Path) -> None:
    folder = _classes(tmp_path / "pets", {"dog": 5, "cat": 4, "eel": 3})
    (folder / "cat" / "README.txt").write_text("skipped: not an image")
    (folder / "cat" / ".hidden.png").write_bytes(b"skipped: hidden")
    data = load_folder_images(folder)
    assert data.class_names == ("cat", "dog", "eel")  # sorted folder names
    assert data.shape == ImageShape(1, 4, 6) and data.name == f"folder:{folder}"
    assert len(data.train_images) + len(data.test_images) == 12 and len(data.test_images) == 2
    for images, labels in (data.split("train"), data.split("test")):
        for image, label in zip(images, labels, strict=True):
            value = int(image[0, 0, 0])  # each picture is one level: 20 * folder index + i
            folder_index = {"cat": 1, "dog": 0, "eel": 2}[data.class_names[label]]
            assert value // 20 == folder_index and (image == value).all()


def test_any_colour_picture_makes_the_set_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    _picture(folder / "a" / "grey.png", 10)
    _picture(folder / "a" / "grey.bmp", 11)
    _picture(folder / "b" / "colour.png", 200, mode="RGB")
    _picture(folder / "b" / "palette.gif", 30, mode="RGB")
    data = load_folder_images(folder)
    assert data.shape == ImageShape(3, 4, 6)
    everything = np.concatenate([data.train_images, data.test_images])
    colour = [image for image in everything if image[0, 0, 0] == 200]
    assert len(colour) == 1 and colour[0][:, 0, 0].tolist() == [200, 250, 44]
    greys = [image for image in everything if image[0, 0, 0] in (10, 11)]
    assert len(greys) == 2 and all((g[0] == g[1]).all() and (g[1] == g[2]).all() for g in greys)


def test_a_train_and_test_layout_keeps_its_split(tmp_path: Path) -> None:
    _classes(tmp_path / "set" / "train", {"x": 3, "y": 2, "z": 2}, mode="RGB")
    _classes(tmp_path / "set" / "test", {"x": 1, "y": 2})  # z has no test images
    Image.new("RGB", (6, 4), (1, 2, 3)).save(tmp_path / "set" / "test" / "y" / "photo.jpg")
    data = load_folder_images(tmp_path / "set", name="mine")
    assert data.name == "mine" and data.class_names == ("x", "y", "z")
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert data.test_labels.tolist() == [0, 1, 1, 1] and data.shape.channels == 3
    _classes(tmp_path / "only" / "train", {"x": 6, "y": 6})
    alone = load_folder_images(tmp_path / "only")
    assert alone.class_names == ("x", "y") and len(alone.test_images) == 2


def _refusal(folder: Path, *fragments: str) -> None:
    with pytest.raises(DataError) as caught:
        load_folder_images(folder)
    message = one_line_message(caught)
    for fragment in fragments:
        assert fragment in message


def test_folders_without_classes_are_refused(tmp_path: Path) -> None:
    _refusal(tmp_path / "absent", "not a folder")
    (tmp_path / "empty").mkdir()
    _refusal(tmp_path / "empty", str(tmp_path / "empty"), "0 class folder(s)", "at least two")
    _classes(tmp_path / "one", {"only": 2})
    _refusal(tmp_path / "one", "1 class folder(s)")
    _classes(tmp_path / "hollow", {"a": 2})
    (tmp_path / "hollow" / "b").mkdir()
    _refusal(tmp_path / "hollow", str(tmp_path / "hollow" / "b"), "no image files")
    _classes(tmp_path / "split" / "train", {"a": 2, "b": 2})
    _classes(tmp_path / "split" / "test", {"a": 1, "c": 1})
    _refusal(tmp_path / "split", "['c'] are not in the train folder")


def test_mixed_sizes_and_broken_files_name_the_file(tmp_path: Path) -> None:
    folder = _classes(tmp_path / "sizes", {"a": 2, "b": 2})
    _picture(folder / "b" / "wide.png", 5, size=(9, 4))
    _refusal(folder, str(folder / "b" / "wide.png"), "9x4", "6x4", "one size")
    broken = _classes(tmp_path / "broken", {"a": 2, "b": 2})
    (broken / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _refusal(broken, str(broken / "a" / "bad.png"), "not an image Pillow can read")


def test_links_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    _picture(outside, 99)
    folder = _classes(tmp_path / "linked", {"a": 2, "b": 2})
    (folder / "a" / "link.png").symlink_to(outside)
    _refusal(folder, "link.png", "leads out of")
    elsewhere = _classes(tmp_path / "elsewhere", {"c": 2})
    folder2 = _classes(tmp_path / "linked2", {"a": 2})
    (folder2 / "b").symlink_to(elsewhere / "c", target_is_directory=True)
    _refusal(folder2, "leads out of")
    inside = _classes(tmp_path / "inside", {"a": 2, "b": 2})
    (inside / "b" / "again.png").symlink_to(inside / "a" / "000.png")
    assert load_folder_images(inside).classes == 2  # a link within the folder is fine


def _png_header(width: int, height: int) -> bytes:
    """A real PNG signature and IHDR declaring ``width`` x ``height`` grey pixels, followed by
    far too little data: decoding it fails, so a refusal naming the pixels was made unread."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0")  # one byte: not even a row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_huge_picture_is_refused_from_its_header_not_with_a_warning(tmp_path: Path) -> None:
    folder = _classes(tmp_path / "bomb", {"a": 2, "b": 2})
    (folder / "b" / "huge.png").write_bytes(_png_header(12_000, 12_000))
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _refusal(folder, "huge.png", "144,000,000 pixels", "IDENTIKIT_LIMIT_IMAGE_PIXELS")
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert before == Image.MAX_IMAGE_PIXELS  # Pillow's global setting is put back


def test_the_pixel_limits_per_image_and_per_dataset_can_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _classes(tmp_path / "set", {"a": 3, "b": 3})  # six pictures of 6x4 = 24 pixels
    monkeypatch.setenv("IDENTIKIT_LIMIT_IMAGE_PIXELS", "23")
    _refusal(folder, str(folder / "a" / "000.png"), "over the limit", "IMAGE_PIXELS")
    monkeypatch.setenv("IDENTIKIT_LIMIT_IMAGE_PIXELS", "24")
    monkeypatch.setenv("IDENTIKIT_LIMIT_DATASET_PIXELS", str(5 * 24))
    _refusal(folder, str(folder), "144 pixels per dataset", "IDENTIKIT_LIMIT_DATASET_PIXELS")
    # The sixth picture's header passes the budget: nothing was decoded, so a broken sixth
    # file is reported as over the budget, not as unreadable.
    (folder / "b" / "002.png").write_bytes(_png_header(6, 4))
    _refusal(folder, "pixels per dataset")
    monkeypatch.setenv("IDENTIKIT_LIMIT_DATASET_PIXELS", str(6 * 24))
    _refusal(folder, "002.png", "not an image Pillow can read")


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.array([[0, 257, 1000, 32767], [32896, 40000, 65280, 65535]], dtype=np.uint16)
    expected = np.round(levels / 257).astype(np.uint8).tolist()  # v * 255 / 65535
    folder = tmp_path / "deep"
    for name, values, suffix in (("little", levels, "png"), ("big", levels.astype(">u2"), "tif")):
        for i in range(3):
            (folder / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(values).save(folder / name / f"{i}.{suffix}")
    assert Image.open(folder / "big" / "0.tif").mode == "I;16B"
    assert Image.open(folder / "little" / "0.png").mode in ("I;16", "I")  # "I" on old Pillows
    data = load_folder_images(folder)
    assert data.shape == ImageShape(1, 2, 4)
    for image in np.concatenate([data.train_images, data.test_images]):
        assert image[0].tolist() == expected  # not 255 wherever the value passes 255
    Image.new("RGB", (4, 2), (9, 8, 7)).save(folder / "little" / "colour.png")
    colour = load_folder_images(folder)  # grey 16-bit repeated in the three channels
    everything = np.concatenate([colour.train_images, colour.test_images])
    deep = [image for image in everything if image[0, 0, 3] == 127]
    assert colour.shape.channels == 3 and len(deep) == 6
    assert all(image[c].tolist() == expected for image in deep for c in range(3))


@pytest.mark.parametrize(
    ("mode", "values", "fragment"),
    [
        ("F", np.array([[0.5, np.nan], [np.inf, -1.0]], dtype=np.float32), "floating-point"),
        ("I", np.array([[0, 1], [70_000, -5]], dtype=np.int32), "32-bit integer"),
    ],
)
def test_pixels_without_a_fixed_range_are_refused_naming_the_mode(
    tmp_path: Path, mode: str, values: np.ndarray, fragment: str
) -> None:
    folder = _classes(tmp_path / "odd", {"a": 2, "b": 2}, size=(2, 2))
    Image.fromarray(values).save(folder / "b" / "odd.tif")
    assert Image.open(folder / "b" / "odd.tif").mode == mode
    _refusal(folder, str(folder / "b" / "odd.tif"), f"Pillow mode {mode!r}", fragment)


def test_lab_pictures_are_refused_naming_the_mode(tmp_path: Path) -> None:
    folder = _classes(tmp_path / "lab", {"a": 2, "b": 2}, size=(2, 2))
    Image.new("LAB", (2, 2), (50, 128, 128)).save(folder / "a" / "lab.tif")
    _refusal(folder, "lab.tif", "Pillow mode 'LAB'", "colour profile")


def test_other_modes_are_converted_to_grey_or_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "grey"
    (grey / "a").mkdir(parents=True)
    (grey / "b").mkdir()
    Image.new("1", (2, 2), 1).save(grey / "a" / "bilevel.png")
    Image.new("LA", (2, 2), (77, 0)).save(grey / "a" / "alpha.png")  # alpha dropped, 77 kept
    Image.new("L", (2, 2), 5).save(grey / "b" / "plain.png")
    data = load_folder_images(grey)
    assert data.shape == ImageShape(1, 2, 2)
    found = {int(i[0, 0, 0]) for i in np.concatenate([data.train_images, data.test_images])}
    assert found == {255, 77, 5}
    colour = tmp_path / "colour"
    (colour / "a").mkdir(parents=True)
    (colour / "b").mkdir()
    Image.new("RGBA", (2, 2), (200, 100, 50, 0)).save(colour / "a" / "clear.png")
    Image.new("CMYK", (2, 2), (0, 255, 0, 0)).save(colour / "a" / "print.tif")
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 1, 2, 3])  # index 1 is (1, 2, 3)
    palette.save(colour / "b" / "palette.png")
    Image.new("L", (2, 2), 60).save(colour / "b" / "grey.png")
    assert Image.open(colour / "b" / "palette.png").mode == "P"
    data = load_folder_images(colour)
    found_rgb = {
        tuple(int(v) for v in i[:, 0, 0])
        for i in np.concatenate([data.train_images, data.test_images])
    }
    assert found_rgb == {(200, 100, 50), (255, 0, 255), (1, 2, 3), (60, 60, 60)}


def _folder_named(parent: Path, name: bytes) -> Path:
    """A class folder whose name is these bytes, holding two grey pictures."""
    path = Path(os.fsdecode(os.path.join(os.fsencode(parent), name)))
    try:
        path.mkdir(parents=True)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    for i in range(2):
        Image.new("L", (3, 3), i).save(path / f"{i}.png")
    return path


def test_a_folder_name_that_is_not_utf8_gives_printable_class_names(tmp_path: Path) -> None:
    _folder_named(tmp_path / "odd", b"\xff\xfe")
    _folder_named(tmp_path / "odd", b"cat")
    data = load_folder_images(tmp_path / "odd")
    assert data.class_names == ("cat", "\\xff\\xfe")
    for name in data.class_names:
        assert name.encode("utf-8").decode("utf-8") == name and name.isprintable()
    _folder_named(tmp_path / "twice", b"\xff")
    _folder_named(tmp_path / "twice", b"\\xff")  # the same text once made printable
    _refusal(tmp_path / "twice", "have the same name", "rename one")
