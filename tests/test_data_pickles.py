"""The CIFAR pickle reader, which interprets opcodes itself: the dicts Python 2 and 3 write come
back, and every hostile or malformed pickle (built here opcode by opcode) is one line, with
nothing run and no state handed to NumPy."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.data.pickles import MAX_MARKS, read_pickle
from tests.helpers import one_line_message

# --- Opcodes, as pickletools documents them ---------------------------------------------------


def text(value: str) -> bytes:
    """SHORT_BINUNICODE or BINUNICODE."""
    raw = value.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + _u32(len(raw)) + raw


def py2str(raw: bytes) -> bytes:
    """Python 2's ``str``: SHORT_BINSTRING or BINSTRING."""
    return b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + _u32(len(raw)) + raw


def num(value: int) -> bytes:
    """BININT1, BININT or LONG1."""
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes(16, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def put(index: int) -> bytes:
    return b"q" + bytes([index])


def get(index: int) -> bytes:
    return b"h" + bytes([index])


def dtype(spec: bytes = b"u1", state: bytes | None = None) -> bytes:
    """``numpy.dtype(spec, 0, 1)`` with a BUILD state: uint8's unless ``state`` is given."""
    state = state or tup(num(3), py2str(b"|"), b"NNN", num(-1), num(-1), num(0))
    return glob("numpy", "dtype") + py2str(spec) + num(0) + num(1) + b"\x87R" + state + b"b"


def array(shape: tuple[int, ...], raw: bytes, kind: bytes | None = None) -> bytes:
    """An array as NumPy pickles it: ``_reconstruct(ndarray, (0,), 'b')``, then BUILD with
    ``(1, shape, dtype, fortran, raw)``."""
    empty = glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    empty += num(0) + b"\x85" + py2str(b"b") + b"\x87R"
    shape_ops = tup(*(num(n) for n in shape))
    return empty + tup(num(1), shape_ops, kind or dtype(), b"\x89", py2str(raw)) + b"b"


def pickled(*pairs: tuple[bytes, bytes]) -> bytes:
    """A protocol-2 dict of the given (key, value) opcodes, as Python 2's cPickle wrote it."""
    items = b"".join(key + value for key, value in pairs)
    return b"\x80\x02}" + put(1) + b"(" + items + b"u."


def _refused(blob: bytes, *fragments: str) -> str:
    with pytest.raises(DataError) as caught:
        read_pickle(blob, "data_batch_1")
    message = one_line_message(caught)
    assert message.startswith("data_batch_1: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- What real files hold ---------------------------------------------------------------------


def _batch() -> dict[str | bytes, object]:
    rng = np.random.default_rng(0)
    return {
        b"batch_label": b"training batch 1 of 5",
        "labels": [6, 9, 9, 4],
        b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        "filenames": ["leptodactylus_pentadactylus_s_000004.png", "camion_s_000148.png"] * 2,
        b"num_vis": 3072,
        b"empty": b"",
        "big": 2**40,
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_a_batch_pickled_by_python_3_comes_back(protocol: int) -> None:
    batch = _batch()
    back = read_pickle(pickle.dumps(batch, protocol=protocol), "data_batch_1")
    assert back.keys() == batch.keys()
    for key, value in batch.items():
        if isinstance(value, np.ndarray):
            assert back[key].dtype == np.uint8 and back[key].flags.owndata
            np.testing.assert_array_equal(back[key], value)
        else:
            assert back[key] == value and type(back[key]) is type(value)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_fortran_ordered_strided_and_empty_arrays_come_back_c_ordered(protocol: int) -> None:
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for value in (np.asfortranarray(pixels), pixels[:, ::2], np.zeros((0, 3072), np.uint8)):
        back = read_pickle(pickle.dumps({b"data": value}, protocol=protocol), "x")[b"data"]
        assert back.flags.c_contiguous and back.shape == value.shape
        np.testing.assert_array_equal(back, value)


def test_a_batch_as_python_2_pickled_it() -> None:
    """Byte strings as SHORT_BINSTRING/BINSTRING, 0/1 for the dtype's flags, memo entries."""
    raw = bytes(range(256)) * 24  # 2 x 3072, longer than a SHORT_BINSTRING
    blob = pickled(
        (py2str(b"batch_label") + put(2), py2str(b"testing batch 1 of 1") + put(3)),
        (py2str(b"labels") + put(4), b"]" + put(5) + b"(" + num(3) + num(7) + b"e"),
        (py2str(b"data") + put(6), array((2, 3072), raw)),
        (py2str(b"filenames"), b"]" + b"(" + py2str(b"a.png") + put(7) + get(7) + b"e"),
    )
    batch = read_pickle(blob, "test_batch")
    assert batch[b"labels"] == [3, 7] and batch[b"batch_label"] == b"testing batch 1 of 1"
    assert batch[b"filenames"] == [b"a.png", b"a.png"]
    np.testing.assert_array_equal(batch[b"data"], np.frombuffer(raw, np.uint8).reshape(2, 3072))


# --- Hostile files ----------------------------------------------------------------------------


def test_a_dtype_state_that_sets_hasobject_is_refused() -> None:
    """issue 28: numpy.dtype's BUILD with flags 0x3f made a dtype that claims to hold objects
    (a traceback, or SystemError and exit 1)."""
    flags = tup(num(3), py2str(b"|"), b"NNN", num(8), num(1), num(0x3F))
    _refused(pickled((text("data"), array((1, 8), b"A" * 8, dtype(b"u1", flags)))), "dtype state")
    _refused(pickled((text("names"), array((1, 2), b"AB", dtype(b"S8", flags)))), "dtype 'S8'")


def test_a_memoised_dtype_resized_after_its_array_exists_is_refused() -> None:
    """issue 28: a second BUILD on a memoised dtype set its item size to 10^9 under an array
    already made with it: heap bytes read into the class names, or a segmentation fault."""
    grow = tup(num(3), py2str(b"|"), b"NNN", num(10**9), num(1), num(0))
    made = array((1, 8), b"A" * 8, dtype() + put(9)) + put(10)
    blob = pickled((text("data"), made + get(9) + grow + b"b0"))
    _refused(blob, "a second state for a dtype")
    first = dtype(b"u1", grow)  # the size given in the first state instead
    _refused(pickled((text("data"), array((1, 8), b"A" * 8, first))), "dtype state")
    s8 = array((1, 1), b"A" * 8, dtype(b"S8") + put(9))  # the review's own spelling
    _refused(pickled((text("label_names"), b"(" + s8 + get(9) + grow + b"b0l")), "dtype 'S8'")


@pytest.mark.parametrize(
    "call",
    [
        glob("os", "system") + text("touch ran") + b"\x85R",
        glob("posix", "system") + text("touch ran") + b"\x85R",
        text("builtins") + text("eval") + b"\x93" + text("1+1") + b"\x85R",
        glob("numpy", "frombuffer") + py2str(b"xx") + b"\x85R",
        glob("numpy", "load") + text("x.npy") + b"\x85R",
        glob("numpy.core.multiarray", "scalar") + b")R",
    ],
    ids=["os.system", "posix.system", "eval", "numpy.frombuffer", "numpy.load", "scalar"],
)
def test_every_other_name_is_refused_before_anything_runs(call: bytes) -> None:
    _refused(pickled((text("data"), call)), "asks for", "refused")


def test_a_pickle_that_runs_a_command_is_refused_and_the_command_never_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    blob = pickled((text("data"), glob("posix", "system") + text(f"touch {marker}") + b"\x85R"))
    assert "posix.system" in _refused(blob)
    assert not marker.exists()
    if os.name == "posix":
        pickle.loads(blob)  # the same bytes through pickle itself: the command runs
        assert marker.exists()


@pytest.mark.parametrize(
    "opcodes",
    [
        b"\x8e" + struct.pack("<Q", 2**62) + b"x",  # BINBYTES8
        b"\x96" + struct.pack("<Q", 2**63) + b"x",  # BYTEARRAY8
        b"X" + _u32(2**32 - 1) + b"x",  # BINUNICODE
        b"T" + struct.pack("<i", 2**31 - 1) + b"x",  # BINSTRING
        b"T" + struct.pack("<i", -5) + b"x",
        b"\x8b" + struct.pack("<i", -1),  # LONG4
    ],
    ids=["BINBYTES8", "BYTEARRAY8", "BINUNICODE", "BINSTRING", "negative", "LONG4"],
)
def test_a_declared_length_beyond_the_file_is_refused_without_allocating(opcodes: bytes) -> None:
    _refused(b"\x80\x04" + b"}" + text("data") + opcodes + b"s.", "damaged", "bytes where")


def test_huge_frames_and_integers_are_refused() -> None:
    _refused(b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"}.", "a frame of")
    _refused(pickled((text("n"), b"\x8b" + _u32(10**6) + b"\xff" * 10**6)), "integer of")
    _refused(pickled((text("n"), b"L" + b"9" * 5000 + b"L\n")), "integer of 5,000 digits")


def test_deep_nesting_is_refused() -> None:
    _refused(b"\x80\x02" + b"(" * 100_000, f"nesting deeper than {MAX_MARKS}")
    nested_lists = b"]" + b"]" * 1000 + b"a" * 1000
    _refused(pickled((text("labels"), nested_lists)), "list inside a list")
    nested_tuples = num(1) + b"\x85" * 1000
    _refused(pickled((text("x"), nested_tuples)), "nested more than two deep")
    _refused(pickled((text("x"), b"}")), "dict as the value")
    _refused(b"\x80\x02]" + put(0) + get(0) + b"a.", "list inside a list")  # a list in itself


@pytest.mark.parametrize(
    ("shape", "raw", "fragment"),
    [
        ((2, 3072), b"\x00" * 10, "over 10 bytes"),
        ((2**31, 2**31), b"\x00" * 10, "over 10 bytes"),
        ((2**40,), b"", "shape"),
        ((-1, 4), b"\x00" * 4, "shape"),
        ((1,) * 9, b"\x00", "shape"),
    ],
    ids=["short", "huge", "huge dim", "negative", "too many dims"],
)
def test_an_array_whose_bytes_do_not_match_its_shape_is_refused(
    shape: tuple[int, ...], raw: bytes, fragment: str
) -> None:
    _refused(pickled((text("data"), array(shape, raw))), "array of shape", fragment)


@pytest.mark.parametrize("kind", [np.float32, np.int8, np.uint16, np.bool_, ">u2", "V1", "S1"])
def test_any_dtype_but_uint8_is_refused(kind: str | type[np.generic]) -> None:
    for protocol in (2, 5):
        value = {b"data": np.zeros((2, 4), dtype=kind)}
        _refused(pickle.dumps(value, protocol=protocol), "dtype", "only uint8")


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        (tup(num(3), py2str(b"<"), b"NNN", num(-1), num(-1), num(0)), "dtype state"),
        (tup(num(3), py2str(b"|"), b"NNN", num(-1), num(-1), num(0), b"N"), "dtype state"),
        (tup(num(3), py2str(b"|"), b"NNN", num(-1), num(-1), b"\x89"), "dtype state"),
        (num(3), "dtype state"),
        # names and fields: the fields are a dict, which no state of a uint8 dtype holds
        (
            tup(num(3), py2str(b"|"), b"N", tup(py2str(b"a")), b"}", num(-1), num(-1), num(0)),
            "dict inside a tuple",
        ),
    ],
    ids=["byte order", "metadata", "bool flags", "not a tuple", "fields"],
)
def test_any_dtype_state_but_uint8s_is_refused(state: bytes, fragment: str) -> None:
    _refused(pickled((text("data"), array((1, 2), b"ab", dtype(b"u1", state)))), fragment)


def test_other_shapes_than_cifars_are_refused() -> None:
    ok = array((1, 2), b"ab")
    _refused(pickled((text("a"), ok), (text("b"), ok)), "2 arrays")
    empty = glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    empty += num(0) + b"\x85" + py2str(b"b") + b"\x87R"
    _refused(pickled((text("data"), empty)), "without its data")
    again = tup(num(1), tup(num(2)), dtype(), b"\x89", py2str(b"ab")) + b"b"
    _refused(pickled((text("data"), ok + put(5) + get(5) + again)), "second state")
    _refused(pickle.dumps([1, 2], protocol=2), "list at the top")
    _refused(pickle.dumps({"x": 1.5}, protocol=2), "BINFLOAT")
    _refused(pickle.dumps({"x": {1, 2}}, protocol=4), "EMPTY_SET")
    _refused(pickle.dumps({"x": [1, "a"]}, protocol=4), "mixing integers and strings")
    _refused(pickle.dumps({"x": [True]}, protocol=4), "bool inside a list")
    _refused(pickle.dumps({1: 2}, protocol=4), "key of type int")
    _refused(pickle.dumps({"x": np.float64(1.5)}, protocol=4), "scalar")
    _refused(pickle.dumps({"x": np.array([None], dtype=object)}, protocol=4), "dtype 'O8'")
    buffers: list[pickle.PickleBuffer] = []
    oob = pickle.dumps({"x": np.zeros(4, np.uint8)}, protocol=5, buffer_callback=buffers.append)
    _refused(oob, "NEXT_BUFFER")


@pytest.mark.parametrize(
    "blob",
    [
        pickle.dumps({b"data": np.zeros(3, np.uint8)})[:-5],
        b"",
        b"\x80\x04garbage",
        b"\x80\x02\xff.",
        b"\x80\x09}.",
        b"\x80\x02}.trailing",
        b"\x80\x02}}.",
        b"\x80\x02h\x07.",
        b"\x80\x02}" + text("a") + b"u.",
        b"\x80\x02V\\u12\n.",
        b"\x80\x02X\x02\x00\x00\x00\xff\xfe.",
        b"\x80\x02S'unquoted\n.",
    ],
    ids=[
        "truncated",
        "empty",
        "garbage",
        "unknown opcode",
        "protocol 9",
        "trailing bytes",
        "two values",
        "memo miss",
        "key without value",
        "bad unicode",
        "bad utf-8",
        "bad string",
    ],
)
def test_damaged_pickles_are_one_line(blob: bytes) -> None:
    _refused(blob, "damaged or unreadable pickle")
