"""cifar10:DIR: small real batch files in CIFAR-10's binary and Python layouts, written here,
and every damaged or hostile one."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from identikit import load_images
from identikit.base.errors import DataError
from identikit.data.cifar import BATCHES, CIFAR_SHAPE, CLASS_NAMES, RECORD, load_cifar10
from tests.helpers import one_line_message

PER_BATCH = 4


def _batch(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``index``'s images (N, 3, 32, 32) and labels: every pixel of image i of batch b
    holds b * 16 + i in red, plus 1 in green and plus 2 in blue."""
    labels = (np.arange(PER_BATCH) + index) % 10
    values = index * 16 + np.arange(PER_BATCH)
    images = np.empty((PER_BATCH, *CIFAR_SHAPE.dims), dtype=np.uint8)
    images[:] = (values[:, None] + np.arange(3)[None])[:, :, None, None]
    return images, labels


def write_binary(folder: Path, *, meta: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(BATCHES):
        images, labels = _batch(index)
        records = np.concatenate([labels[:, None], images.reshape(PER_BATCH, -1)], axis=1)
        (folder / f"{name}.bin").write_bytes(records.astype(np.uint8).tobytes())
    if meta:
        (folder / "batches.meta.txt").write_text("\n".join(CLASS_NAMES[::-1]) + "\n\n")
    return folder


def write_python(folder: Path, *, meta: bool = True, protocol: int = 2) -> Path:
    """The Python version as a user's converted copy holds it: ``pickle.dumps`` of the real
    structure with a current NumPy's uint8 array."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(BATCHES):
        images, labels = _batch(index)
        batch = {
            b"batch_label": f"{name} of 6".encode(),
            b"labels": labels.tolist(),
            b"data": images.reshape(PER_BATCH, -1),
            b"filenames": [f"img_{i}.png".encode() for i in range(PER_BATCH)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    if meta:
        names = {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(names, protocol=protocol))
    return folder


# --- Pickles as Python 2's cPickle wrote the distributed files, opcode by opcode --------------


def _py2str(raw: bytes) -> bytes:
    """A Python 2 ``str``: SHORT_BINSTRING, or BINSTRING when longer."""
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _u8_dtype(state: bytes | None = None) -> bytes:
    """``numpy.dtype('u1', 0, 1)`` and its BUILD state (uint8's unless ``state`` is given)."""
    state = state or _tuple(_int(3), _py2str(b"|"), b"NNN", _int(-1), _int(-1), _int(0))
    return b"cnumpy\ndtype\n" + _py2str(b"u1") + _int(0) + _int(1) + b"\x87R" + state + b"b"


def _py2_array(pixels: np.ndarray, kind: bytes) -> bytes:
    """``_reconstruct(ndarray, (0,), 'b')``, then BUILD with (1, shape, dtype, False, raw)."""
    empty = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    empty += _int(0) + b"\x85" + _py2str(b"b") + b"\x87R"
    shape = _tuple(*(_int(n) for n in pixels.shape))
    return empty + _tuple(_int(1), shape, kind, b"\x89", _py2str(pixels.tobytes())) + b"b"


def _py2_dict(**entries: bytes) -> bytes:
    """A protocol-2 dict of byte-string keys, each value given as opcodes, memoised as
    cPickle did (BINPUT after each key)."""
    items = b"".join(
        _py2str(key.encode()) + b"q" + bytes([index]) + value
        for index, (key, value) in enumerate(entries.items(), start=2)
    )
    return b"\x80\x02}q\x01(" + items + b"u."


def _py2_list(items: list[bytes]) -> bytes:
    return b"](" + b"".join(items) + b"e"


def write_python_2(folder: Path, *, meta: bytes | None = None) -> Path:
    """The Python version as the distributed ``cifar-10-batches-py`` holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(BATCHES):
        images, labels = _batch(index)
        (folder / name).write_bytes(
            _py2_dict(
                batch_label=_py2str(f"{name} of 6".encode()),
                labels=_py2_list([_int(int(label)) for label in labels]),
                data=_py2_array(images.reshape(PER_BATCH, -1), _u8_dtype()),
                filenames=_py2_list([_py2str(f"img_{i}.png".encode()) for i in range(4)]),
            )
        )
    names = _py2_list([_py2str(n.encode()) for n in CLASS_NAMES[::-1]])
    (folder / "batches.meta").write_bytes(
        meta or _py2_dict(num_cases_per_batch=_int(PER_BATCH), label_names=names)
    )
    return folder


def _check(data_folder: Path, names: tuple[str, ...], layout: str) -> None:
    data = load_cifar10(data_folder)
    assert data.shape == CIFAR_SHAPE and data.class_names == names
    assert len(data.train_images) == 5 * PER_BATCH and len(data.test_images) == PER_BATCH
    assert data.name == f"cifar10:{data_folder}", layout
    for index in range(len(BATCHES)):
        images, labels = _batch(index)
        got_images, got_labels = (
            (data.test_images, data.test_labels)
            if index == 5
            else (
                data.train_images[index * PER_BATCH : (index + 1) * PER_BATCH],
                data.train_labels[index * PER_BATCH : (index + 1) * PER_BATCH],
            )
        )
        np.testing.assert_array_equal(got_images, images)  # channels stay R, G, B
        assert got_labels.tolist() == labels.tolist()


def test_the_binary_version_is_read_record_by_record(tmp_path: Path) -> None:
    _check(write_binary(tmp_path / "bin"), CLASS_NAMES[::-1], "binary with its meta file")
    _check(write_binary(tmp_path / "plain", meta=False), CLASS_NAMES, "binary, default names")
    write_binary(tmp_path / "unpacked" / "cifar-10-batches-bin")
    assert load_cifar10(tmp_path / "unpacked").classes == 10  # the archive's own folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_python_version_is_read_without_pickle(tmp_path: Path, protocol: int) -> None:
    folder = write_python(tmp_path / "py", protocol=protocol)
    _check(folder, CLASS_NAMES, "python with its meta file")
    assert load_images(f"cifar10:{folder}").class_names == CLASS_NAMES  # text, not bytes
    write_python(tmp_path / "unpacked" / "cifar-10-batches-py", meta=False, protocol=protocol)
    assert load_cifar10(tmp_path / "unpacked").class_names == CLASS_NAMES


def test_the_python_version_as_python_2_wrote_it_is_read(tmp_path: Path) -> None:
    folder = write_python_2(tmp_path / "cifar-10-batches-py")
    _check(folder, CLASS_NAMES[::-1], "python 2's pickles")
    data = load_images(f"cifar10:{tmp_path}")
    assert data.class_names == CLASS_NAMES[::-1] and all(type(n) is str for n in data.class_names)


def _hostile_meta(second_state: bytes) -> bytes:
    """A ``batches.meta`` whose names are arrays of a memoised dtype given ``second_state``
    after the arrays exist (issue 28: with NumPy's own ``__setstate__`` this read heap bytes
    into the class names, or crashed Python)."""
    made = _py2_array(np.frombuffer(b"airplane", np.uint8)[None], _u8_dtype() + b"q\x09")
    names = b"(" + made + b"q\x0a" + b"h\x09" + second_state + b"b0" + b"h\x0al"
    return _py2_dict(label_names=names)


@pytest.mark.parametrize(
    ("meta", "fragment"),
    [
        (
            _hostile_meta(_tuple(_int(3), _py2str(b"|"), b"NNN", _int(10**9), _int(1), _int(0))),
            "second state for a dtype",
        ),
        (
            _py2_dict(
                label_names=_py2_array(
                    np.zeros((2, 8), np.uint8),
                    _u8_dtype(_tuple(_int(3), _py2str(b"|"), b"NNN", _int(8), _int(1), _int(0x3F))),
                )
            ),
            "dtype state",
        ),
        (_py2_dict(label_names=b"cposix\nsystem\n" + _py2str(b"true") + b"\x85R"), "posix.system"),
        (_py2_dict(label_names=_py2_list([_int(1), _int(2)])), "label_names must be a list"),
    ],
    ids=["resized dtype", "hasobject", "os.system", "numbers"],
)
def test_a_hostile_batches_meta_is_one_line(tmp_path: Path, meta: bytes, fragment: str) -> None:
    folder = write_python_2(tmp_path / "py", meta=meta)
    with pytest.raises(DataError) as caught:
        load_images(f"cifar10:{folder}")
    message = one_line_message(caught)
    assert message.startswith(f"{folder / 'batches.meta'}: ") and fragment in message


def _refusal(folder: Path, *fragments: str) -> None:
    with pytest.raises(DataError) as caught:
        load_cifar10(folder)
    message = one_line_message(caught)
    for fragment in fragments:
        assert fragment in message


def test_truncated_and_damaged_binary_batches_name_the_file(tmp_path: Path) -> None:
    folder = write_binary(tmp_path / "cut")
    batch = folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    _refusal(folder, str(batch), f"not a whole number of {RECORD:,}-byte records")
    batch.write_bytes(b"")
    _refusal(folder, str(batch), "0 bytes")
    folder = write_binary(tmp_path / "labels")
    records = bytearray((folder / "test_batch.bin").read_bytes())
    records[RECORD] = 12  # the second record's label
    (folder / "test_batch.bin").write_bytes(bytes(records))
    _refusal(folder, str(folder / "test_batch.bin"), "label 12 outside the 10 classes")
    (folder / "data_batch_5.bin").unlink()
    _refusal(folder, str(folder), "lacks data_batch_5.bin")
    (tmp_path / "nothing").mkdir()
    _refusal(tmp_path / "nothing", "no CIFAR-10 batches")


def test_damaged_python_batches_name_the_file(tmp_path: Path) -> None:
    folder = write_python(tmp_path / "py")
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-40])
    _refusal(folder, str(batch), "damaged or unreadable pickle")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}))
    _refusal(folder, str(batch), "dtype", "only uint8")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, 1]}))
    _refusal(folder, str(batch), "BINFLOAT", "refused")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["0"]}))
    _refusal(folder, str(batch), "labels must be a list of integers")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3), np.uint8), b"labels": [0, 1]}))
    _refusal(folder, str(batch), "data rows hold 3 values")
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    _refusal(folder, str(batch), "2 images but 1 labels")
    batch.write_bytes(pickle.dumps([1, 2]))
    _refusal(folder, str(batch), "expected a dict")


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_python_batch_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    folder = write_python(tmp_path / "py")
    marker = tmp_path / "it-ran"
    hostile = {b"data": _Hostile(marker), b"labels": [0]}
    (folder / "data_batch_4").write_bytes(pickle.dumps(hostile, protocol=2))
    _refusal(folder, str(folder / "data_batch_4"), "system", "refused")
    write_python(folder)  # every batch good again; now the class names are hostile
    (folder / "batches.meta").write_bytes(pickle.dumps(_Hostile(marker)))
    _refusal(folder, str(folder / "batches.meta"), "refused")
    assert not marker.exists()


def test_links_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    outside = write_binary(tmp_path / "elsewhere")
    folder = write_binary(tmp_path / "linked")
    (folder / "test_batch.bin").unlink()
    (folder / "test_batch.bin").symlink_to(outside / "test_batch.bin")
    _refusal(folder, "test_batch.bin", "leads out of")
