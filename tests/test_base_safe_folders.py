"""Folders below an output folder, opened without following links: the folder the user names
may be a link, every folder identikit makes below it may not, and removing one deletes only its
own regular files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from identikit.base.errors import IdentikitError
from identikit.base.safe_folders import opened_folder, remove_folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A user's folder with a file in it, that nothing below an output folder may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("user data")
    return folder


def test_folders_below_the_root_are_made_one_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with opened_folder(root, root / "a" / "b") as fd:
        os.close(os.open("x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    assert (root / "a" / "b" / "x").is_file()


def test_the_root_the_user_named_may_be_a_link(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "out"
    root.symlink_to(outside)
    with opened_folder(root, root / "sub"):
        pass
    assert (outside / "sub").is_dir()


@pytest.mark.parametrize("depth", [1, 2])
def test_a_link_below_the_root_is_refused_naming_it(
    tmp_path: Path, outside: Path, depth: int
) -> None:
    root = tmp_path / "out"
    parent = root / "a" if depth == 2 else root
    parent.mkdir(parents=True)
    (parent / "shards").symlink_to(outside)
    with (
        pytest.raises(IdentikitError, match="is a link; refusing to write through it") as error,
        opened_folder(root, parent / "shards" / "deeper"),
    ):
        pass
    assert str(parent / "shards") in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_a_file_where_a_folder_belongs_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "pngs").write_text("mine")
    with pytest.raises(IdentikitError, match="is not a folder"), opened_folder(root, root / "pngs"):
        pass
    with (
        pytest.raises(IdentikitError, match="is a file, not a folder"),
        opened_folder(root / "pngs", root / "pngs" / "x"),
    ):
        pass
    assert (root / "pngs").read_text() == "mine"


@pytest.mark.parametrize("path", ["elsewhere/x", "out/../outside"])
def test_a_path_outside_the_root_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(IdentikitError, match="refusing"), opened_folder(tmp_path / "out", path):
        pass


def test_removing_deletes_only_regular_files_of_its_own(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "out"
    (root / "shards").mkdir(parents=True)
    (root / "shards" / "plan.json").write_text("{}")
    (root / "shards" / "link").symlink_to(outside / "precious.txt")
    assert not remove_folder(root, root / "shards")  # the link keeps the folder
    assert os.listdir(root / "shards") == ["link"]
    assert (outside / "precious.txt").read_text() == "user data"
    (root / "shards" / "link").unlink()
    assert remove_folder(root, root / "shards")
    assert not (root / "shards").exists()


def test_removing_a_linked_folder_deletes_nothing(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "shards").symlink_to(outside)
    with pytest.raises(IdentikitError, match="is a link"):
        remove_folder(root, root / "shards")
    assert (outside / "precious.txt").read_text() == "user data"
    assert (root / "shards").is_symlink()
