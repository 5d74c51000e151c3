"""folder:DIR datasets: real PNG, JPEG, BMP and GIF files written with Pillow, both layouts,
and every folder identikit refuses."""

from __future__ import annotations

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


def _classes(folder: Path, counts: dict[str, int], *, mode: str = "L") -> Path:
    for index, (name, count) in enumerate(counts.items()):
        for i in range(count):
            _picture(folder / name / f"{i:03d}.png", 20 * index + i, mode=mode)
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
