"""The pickle reader that runs no code: arrays and containers come back, anything else is
refused before it runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from identikit.base.errors import DataError
from identikit.data.pickles import read_pickle
from tests.helpers import one_line_message


class _RunsACommand:
    """Unpickled by ``pickle.load``, this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_lists_and_dicts_come_back(protocol: int) -> None:
    data = np.arange(24, dtype=np.uint8).reshape(2, 12)
    value = {b"data": data, "labels": [1, 2], b"name": "x", b"f": np.linspace(0, 1, 3)}
    back = read_pickle(pickle.dumps(value, protocol=protocol), "batch")
    np.testing.assert_array_equal(back[b"data"], data)
    assert back[b"data"].dtype == np.uint8 and back["labels"] == [1, 2]
    np.testing.assert_array_equal(back[b"f"], np.linspace(0, 1, 3))
    assert read_pickle(pickle.dumps(np.zeros((0, 3)), protocol=protocol), "x").shape == (0, 3)


# A dict {"data": uint8 array 2 x 3, "labels": [3, 7]} in the opcodes Python 2's cPickle
# wrote CIFAR-10's batches with: strings as SHORT_BINSTRING, the array through
# numpy.core.multiarray._reconstruct and the state numpy.dtype("u1") is rebuilt from.
PYTHON2_BATCH = (
    b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\n"
    b"q\x03K\x00\x85U\x01b\x87Rq\x04(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87R"
    b"q\x06(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06\x00\x01\x02\x03\x04\x05"
    b"tbU\x06labelsq\x07]q\x08(K\x03K\x07eu."
)


def test_a_batch_as_python_2_pickled_it() -> None:
    batch = read_pickle(PYTHON2_BATCH, "data_batch_1")
    assert batch[b"labels"] == [3, 7] and batch[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(batch[b"data"], np.arange(6, dtype=np.uint8).reshape(2, 3))


def test_a_pickle_that_runs_a_command_is_refused_and_the_command_never_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    blob = pickle.dumps({b"data": _RunsACommand(marker), b"labels": []})
    with pytest.raises(DataError) as caught:
        read_pickle(blob, "data_batch_1")
    message = one_line_message(caught)
    assert "data_batch_1" in message and f"{os.system.__module__}.system" in message
    assert "refused" in message
    assert not marker.exists()
    pickle.loads(blob)  # the same bytes through pickle itself: the command runs
    assert marker.exists()


@pytest.mark.parametrize(
    "value",
    [_Evaluates(), np.array([None, 1], dtype=object), np.float64(1.5), {1, 2}.__class__],
    ids=["eval", "object array", "numpy scalar", "a class"],
)
def test_other_names_are_refused(value: object) -> None:
    with pytest.raises(DataError, match="refused") as caught:
        read_pickle(pickle.dumps(value, protocol=4), "meta")
    assert one_line_message(caught).startswith("meta:")


@pytest.mark.parametrize(
    "blob",
    [
        pickle.dumps({b"data": np.zeros(3)})[:-5],
        b"",
        b"\x80\x04garbage",
        # _reconstruct asked for a large array up front: refused, nothing allocated
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x00\x00\x10\x85U\x01b\x87R.",
    ],
    ids=["truncated", "empty", "garbage", "huge"],
)
def test_damaged_pickles_are_one_line(blob: bytes) -> None:
    with pytest.raises(DataError) as caught:
        read_pickle(blob, "test_batch")
    assert one_line_message(caught).startswith("test_batch:")
