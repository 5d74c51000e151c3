"""Reading CIFAR-10's pickled batches without unpickling them.

A pickle is a program for a small stack machine (the opcodes are documented in the standard
library's ``pickletools`` and PEP 307, 3154 and 574): ``GLOBAL`` names any importable callable,
``REDUCE`` calls it and ``BUILD`` hands an object a state of the file's choosing. Even NumPy's
own names are not safe to call: ``numpy.dtype.__setstate__`` accepts flags and item sizes that
make a dtype claim to hold objects, or make an existing array read memory it does not own.

So :func:`read_pickle` never calls ``pickle`` or NumPy on what the file says. It interprets the
opcodes itself (protocols 0 to 5, as Python 2's cPickle wrote the distributed files and Python 3
writes converted copies) and accepts only the shape of CIFAR-10's files: one dict whose keys are
strings and whose values are strings, integers, lists of integers, lists of strings and at most
one array of unsigned 8-bit pixels. Names a file may give are a handful of constructors
(``numpy.dtype``, ``numpy.ndarray``, NumPy's ``_reconstruct`` and ``_frombuffer`` in either
spelling of its core module, and the ``_codecs.encode`` / ``bytes`` Python 3 writes bytes with in
protocols 0-2); each is replaced by a check of its exact arguments, and the array is made here,
from the raw bytes, once its shape is known to describe exactly those bytes. Anything else, and
anything malformed, is a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import codecs
import math
import pickletools
import reprlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from identikit.base.errors import DataError

MAX_STACK = 100_000
"""Items on the stack at once; a real batch needs about a thousand (pickle appends in batches)."""
MAX_MARKS = 16
"""MARKs open at once; a real batch needs three."""
MAX_MEMO = 1_000_000
"""Memo entries; a real batch memoises about one per file name (10,000 a batch)."""
MAX_LIST = 1_000_000
"""Items in one list; a batch lists 10,000 labels and file names."""
MAX_DICT = 64
"""Keys in the dict; a batch has four, ``batches.meta`` three."""
MAX_INT_BYTES = 16
"""Bytes (or decimal digits / 2) of one integer; CIFAR's are counts and labels."""
MAX_DIMS = 8
MAX_DIM = 2**31

_OPCODE_NAMES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}


class _Refused(Exception):
    """The file asks for something CIFAR-10's files never hold (a name, a type, a state)."""


class _Damaged(Exception):
    """The file is not a well-formed pickle (cut short, a bad length, an unknown opcode)."""


@dataclass(frozen=True)
class _Constructor:
    """What an allowed ``GLOBAL`` stands for: a check of its arguments, never the name itself."""

    name: str
    build: Callable[[tuple[Any, ...]], object]

    def __repr__(self) -> str:
        return self.name


class _ArrayType:
    """What ``numpy.ndarray`` stands for: only an argument of ``_reconstruct``."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


class _Dtype:
    """``numpy.dtype('u1')``, the only dtype read; ``built`` once its BUILD state was checked
    (NumPy's own ``__setstate__`` would let a second BUILD change the item size of an array
    already made with it)."""

    def __init__(self) -> None:
        self.built = False

    def __repr__(self) -> str:
        return "dtype('u1')"


class _Array:
    """An array being read: ``_reconstruct`` makes it empty, BUILD gives it data once."""

    def __init__(self, value: np.ndarray | None = None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "an array"


_NDARRAY = _ArrayType()
_U8_STATE = (3, "|", None, None, None, -1, -1, 0)
"""``numpy.dtype('u1').__reduce__()[2]``: version 3, no byte order, no names, fields or
subarray, the default item size and alignment, and no flags (no objects inside)."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxtuple, _SHORT.maxlist, _SHORT.maxdict = 2, 8, 4, 4
_SHORT.maxstring = _SHORT.maxother = 40


def _show(value: object) -> str:
    """``value`` for a one-line message: short however large (an image's bytes are not
    copied into it), escapes shown rather than sent."""
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: object) -> str | None:
    """A string as either Python wrote it (Python 2's ``str`` is bytes here), else None."""
    if type(value) is bytes:
        return value.decode("latin-1")
    return value if type(value) is str else None


def _is_int(value: object, *allowed: int) -> bool:
    """Whether ``value`` is an int or bool equal to one of ``allowed`` (Python 2 wrote flags
    as 0/1, Python 3 as False/True)."""
    return type(value) in (int, bool) and value in allowed


def _new_dtype(args: tuple[Any, ...]) -> _Dtype:
    """``numpy.dtype('u1', False, True)``, as ``dtype.__reduce__`` spells uint8; nothing else."""
    spec = _text(args[0]) if args else None
    if spec != "u1":
        shown = _show(spec if spec is not None else args[0] if args else args)
        raise _Refused(f"the dtype {shown} (only uint8, 'u1', is read)")
    align_and_copy = args[1:]  # (False, True) from Python 3, (0, 1) from Python 2
    if align_and_copy and not (
        len(align_and_copy) == 2
        and _is_int(align_and_copy[0], 0)
        and _is_int(align_and_copy[1], 0, 1)
    ):
        raise _Refused(f"numpy.dtype with the arguments {_show(args)}")
    return _Dtype()


def _set_dtype_state(dtype: _Dtype, state: object) -> None:
    """Check a dtype's BUILD state is uint8's, exactly, and that it is given only once."""
    if dtype.built:
        raise _Refused("a second state for a dtype already built (it could resize an array)")
    if not (
        type(state) is tuple
        and len(state) == len(_U8_STATE)
        and _is_int(state[0], 3)
        and _text(state[1]) == "|"
        and all(item is None for item in state[2:5])
        and all(
            type(got) is int and got == want
            for got, want in zip(state[5:], _U8_STATE[5:], strict=True)
        )
    ):
        raise _Refused(f"a dtype state other than uint8's: {_show(state)}")
    dtype.built = True


def _reconstruct(args: tuple[Any, ...]) -> _Array:
    """``_reconstruct(ndarray, (0,), b'b')``: the empty array ``ndarray.__reduce__`` starts
    from; nothing is allocated, BUILD then gives the real shape and bytes."""
    if not (
        len(args) == 3
        and args[0] is _NDARRAY
        and type(args[1]) is tuple
        and len(args[1]) == 1
        and type(args[1][0]) is int
        and args[1][0] == 0
        and _text(args[2]) == "b"
    ):
        raise _Refused(f"_reconstruct with the arguments {_show(args)}")
    return _Array()


def _uint8_array(raw: object, shape: object, dtype: object, order: str) -> np.ndarray:
    """The uint8 array of ``shape`` over ``raw``, a copy owned by identikit, made only once
    the shape is known to describe exactly ``len(raw)`` bytes."""
    if not isinstance(dtype, _Dtype):
        raise _Refused(f"an array of dtype {_show(dtype)} (only uint8 is read)")
    if type(raw) is not bytes:
        raise _Refused(f"an array whose data is a {type(raw).__name__}, not bytes")
    if not (
        type(shape) is tuple
        and len(shape) <= MAX_DIMS
        and all(type(n) is int and 0 <= n <= MAX_DIM for n in shape)
    ):
        raise _Refused(f"an array of shape {_show(shape)}")
    if math.prod(shape) != len(raw):
        raise _Refused(f"an array of shape {_show(shape)} over {len(raw):,} bytes")
    pixels = np.frombuffer(raw, dtype=np.uint8)
    return pixels.reshape(shape, order="F" if order == "F" else "C").copy(order="C")


def _fill_array(array: _Array, state: object) -> None:
    """``ndarray.__setstate__``'s state, ``(1, shape, dtype, fortran, raw)`` (or without the
    version), checked and turned into the array here; given only once."""
    if array.value is not None:
        raise _Refused("a second state for an array already built")
    if type(state) is tuple and len(state) == 5 and _is_int(state[0], 1):
        state = state[1:]
    if type(state) is not tuple or len(state) != 4 or not _is_int(state[2], 0, 1):
        raise _Refused(f"an array state {_show(state)}")
    shape, dtype, fortran, raw = state
    array.value = _uint8_array(raw, shape, dtype, "F" if fortran else "C")


def _frombuffer(args: tuple[Any, ...]) -> _Array:
    """``_frombuffer(buffer, dtype, shape, order)``, NumPy's protocol-5 form of an array."""
    if len(args) != 4 or args[3] not in ("C", "F"):
        raise _Refused(f"_frombuffer with the arguments {_show(args)}")
    buffer, dtype, shape, order = args
    return _Array(_uint8_array(buffer, shape, dtype, order))


def _encode(args: tuple[Any, ...]) -> bytes:
    """``_codecs.encode(text, 'latin1')``, Python 3's way of writing bytes in protocols 0-2."""
    if len(args) != 2 or type(args[0]) is not str or args[1] not in ("latin1", "latin-1"):
        raise _Refused(f"_codecs.encode with the arguments {_show(args)}")
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError:
        raise _Damaged("bytes given as text beyond latin-1") from None


def _empty_bytes(args: tuple[Any, ...]) -> bytes:
    """``bytes()``, Python 3's empty bytes in protocols 0-2 (``bytes(n)`` would allocate)."""
    if args:
        raise _Refused(f"bytes with the arguments {_show(args)}")
    return b""


_CONSTRUCTORS: dict[tuple[str, str], _Constructor | _ArrayType] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Constructor("numpy.dtype", _new_dtype),
    ("_codecs", "encode"): _Constructor("_codecs.encode", _encode),
    **{(mod, "bytes"): _Constructor("bytes", _empty_bytes) for mod in ("__builtin__", "builtins")},
    **{
        (f"{core}.multiarray", "_reconstruct"): _Constructor("_reconstruct", _reconstruct)
        for core in ("numpy.core", "numpy._core")
    },
    **{
        (f"{core}.numeric", "_frombuffer"): _Constructor("_frombuffer", _frombuffer)
        for core in ("numpy.core", "numpy._core")
    },
}


def _resolve(module: str, name: str) -> _Constructor | _ArrayType:
    """The constructor a ``GLOBAL`` names, or a refusal naming it (before anything is called)."""
    try:
        return _CONSTRUCTORS[(module, name)]
    except KeyError:
        shown = f"{module}.{name}"
        raise _Refused(shown if shown.isprintable() and len(shown) < 80 else _show(shown)) from None


_SCALARS = (int, str, bytes)


class _Machine:
    """The pickle machine, reduced to what CIFAR-10's files use; builds no object it has not
    checked, and never more bytes than the file holds."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        # Tuples that hold a tuple, kept alive so their ids stay theirs: a tuple may hold one
        # (an array's state holds its shape) but no deeper, which bounds every check here.
        self.nested: dict[int, tuple[Any, ...]] = {}
        self.handlers = self._handlers()

    # --- reading the file ---------------------------------------------------------------------

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes; a length beyond the file's end is refused unallocated."""
        left = len(self.data) - self.pos
        if size < 0 or size > left:
            raise _Damaged(f"a length of {size:,} bytes where {left:,} remain")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise _Damaged("a line without its end")
        return self.take(end - self.pos + 1)[:-1]

    def decimal(self, text: bytes) -> int:
        """A protocol-0 integer, short enough that converting it costs nothing."""
        if len(text) > 2 * MAX_INT_BYTES + 2:
            raise _Refused(f"an integer of {len(text):,} digits")
        try:
            return int(text)
        except ValueError:
            raise _Damaged(f"the integer {_show(text)}") from None

    # --- the stack ----------------------------------------------------------------------------

    def push(self, value: object) -> None:
        if len(self.stack) >= MAX_STACK:
            raise _Refused(f"more than {MAX_STACK:,} items on its stack")
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise _Damaged("an opcode with nothing on the stack")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _Damaged("an opcode with nothing on the stack")
        return self.stack[-1]

    def mark(self) -> None:
        if len(self.marks) >= MAX_MARKS:
            raise _Refused(f"nesting deeper than {MAX_MARKS} levels")
        self.marks.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Damaged("an opcode that needs a MARK without one")
        items, self.stack = self.stack, self.marks.pop()
        return items

    # --- values -------------------------------------------------------------------------------

    def tuple_of(self, items: list[Any]) -> tuple[Any, ...]:
        """A tuple of scalars, constructor names, dtypes, or tuples of those (no deeper)."""
        allowed = (*_SCALARS, bool, type(None), tuple, _Dtype, _ArrayType, _Constructor)
        nested = False
        for item in items:
            if not isinstance(item, allowed):
                raise _Refused(f"a {type(item).__name__} inside a tuple")
            if type(item) is tuple:
                if id(item) in self.nested:
                    raise _Refused("tuples nested more than two deep")
                nested = True
        made = tuple(items)
        if nested:
            self.nested[id(made)] = made
        return made

    def append(self, target: object, items: list[Any]) -> None:
        """Items added to a list: integers or strings only (labels, names, file names)."""
        if type(target) is not list:
            raise _Refused(f"items appended to a {type(target).__name__}")
        for item in items:
            if type(item) not in _SCALARS:
                raise _Refused(f"a {type(item).__name__} inside a list")
        if len(target) + len(items) > MAX_LIST:
            raise _Refused(f"a list of more than {MAX_LIST:,} items")
        target.extend(items)

    def set_items(self, target: object, items: list[Any]) -> None:
        """Keys and values added to the dict: string keys; values strings, integers, lists or
        an array (checked in full once the file is read)."""
        if type(target) is not dict:
            raise _Refused(f"items set in a {type(target).__name__}")
        if len(items) % 2:
            raise _Damaged("a key without its value")
        for key, value in zip(items[::2], items[1::2], strict=True):
            if type(key) not in (str, bytes):
                raise _Refused(f"a dict key of type {type(key).__name__}")
            if type(value) not in (*_SCALARS, list, _Array):
                raise _Refused(f"a {type(value).__name__} as the value of {_show(key)}")
            target[key] = value
        if len(target) > MAX_DICT:
            raise _Refused(f"a dict of more than {MAX_DICT} keys")

    def remember(self, index: int) -> None:
        if index not in self.memo and len(self.memo) >= MAX_MEMO:
            raise _Refused(f"more than {MAX_MEMO:,} memo entries")
        self.memo[index] = self.top()

    def recall(self, index: int) -> None:
        if index not in self.memo:
            raise _Damaged(f"memo entry {index} read before it was written")
        self.push(self.memo[index])

    def text(self, raw: bytes, codec: str = "utf-8") -> str:
        try:
            return raw.decode(codec, "surrogatepass") if codec == "utf-8" else raw.decode(codec)
        except UnicodeDecodeError:
            raise _Damaged("text that is not valid UTF-8") from None

    def quoted(self, raw: bytes) -> bytes:
        """A protocol-0 ``STRING``: Python 2's repr of a byte string."""
        if len(raw) < 2 or raw[:1] not in (b"'", b'"') or raw[-1:] != raw[:1]:
            raise _Damaged("a STRING without its quotes")
        try:
            value: bytes = codecs.escape_decode(raw[1:-1])[0]
        except ValueError:
            raise _Damaged("a STRING with a bad escape") from None
        return value

    # --- opcodes ------------------------------------------------------------------------------

    def reduce(self) -> None:
        args, func = self.pop(), self.pop()
        if not isinstance(func, _Constructor) or type(args) is not tuple:
            raise _Refused(f"a call of {_show(func)}")
        self.push(func.build(args))

    def build(self) -> None:
        state, target = self.pop(), self.top()
        if isinstance(target, _Dtype):
            _set_dtype_state(target, state)
        elif isinstance(target, _Array):
            _fill_array(target, state)
        else:
            raise _Refused(f"a state given to a {type(target).__name__}")

    def stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        if type(module) is not str or type(name) is not str:
            raise _Damaged("STACK_GLOBAL without two strings")
        self.push(_resolve(module, name))

    def protocol(self) -> None:
        version = self.take(1)[0]
        if version > 5:
            raise _Damaged(f"pickle protocol {version}")

    def frame(self) -> None:
        size = self.unpack("<Q")
        if size > len(self.data) - self.pos:
            raise _Damaged(f"a frame of {size:,} bytes where {len(self.data) - self.pos:,} remain")

    def int_line(self) -> None:
        """Protocol 0's ``INT``, which also spells False and True as ``00`` and ``01``."""
        text = self.line()
        flags = {b"00": False, b"01": True}
        self.push(flags[text] if text in flags else self.decimal(text))

    def long_bytes(self, size: int) -> None:
        if size > MAX_INT_BYTES:
            raise _Refused(f"an integer of {size:,} bytes")
        self.push(int.from_bytes(self.take(size), "little", signed=True))

    def pop_many(self, count: int) -> list[Any]:
        """The top ``count`` items, in the order they were pushed."""
        items = [self.pop() for _ in range(count)]
        return items[::-1]

    def new_dict(self) -> None:
        made: dict[Any, Any] = {}
        self.set_items(made, self.pop_mark())
        self.push(made)

    def new_list(self) -> None:
        made: list[Any] = []
        self.append(made, self.pop_mark())
        self.push(made)

    def append_one(self) -> None:
        value = self.pop()
        self.append(self.top(), [value])

    def append_many(self) -> None:
        items = self.pop_mark()
        self.append(self.top(), items)

    def set_one(self) -> None:
        pair = self.pop_many(2)
        self.set_items(self.top(), pair)

    def set_many(self) -> None:
        items = self.pop_mark()
        self.set_items(self.top(), items)

    def discard(self) -> None:
        self.pop()

    def discard_mark(self) -> None:
        self.pop_mark()

    def global_line(self) -> None:
        module = self.text(self.line())
        self.push(_resolve(module, self.text(self.line())))

    def _handlers(self) -> dict[int, Callable[[], None]]:
        """Each supported opcode's action; every other opcode (objects, sets, floats,
        extensions, persistent ids, out-of-band buffers) is refused by name."""
        u8, u16, i32, u32, u64 = "<B", "<H", "<i", "<I", "<Q"
        push, take, unpack, text = self.push, self.take, self.unpack, self.text
        table: dict[bytes, Callable[[], None]] = {
            b"\x80": self.protocol,
            b"\x95": self.frame,
            b"(": self.mark,
            b"N": lambda: push(None),
            b"\x88": lambda: push(True),
            b"\x89": lambda: push(False),
            b"I": self.int_line,
            b"L": lambda: push(self.decimal(self.line().rstrip(b"L"))),
            b"J": lambda: push(unpack(i32)),
            b"K": lambda: push(unpack(u8)),
            b"M": lambda: push(unpack(u16)),
            b"\x8a": lambda: self.long_bytes(unpack(u8)),
            b"\x8b": lambda: self.long_bytes(unpack(i32)),
            # Python 2's str (STRING, BINSTRING, SHORT_BINSTRING) comes back as bytes, as
            # pickle.load(..., encoding="bytes") gives it; a bytearray is bytes here too.
            b"S": lambda: push(self.quoted(self.line())),
            b"T": lambda: push(take(unpack(i32))),
            b"U": lambda: push(take(unpack(u8))),
            b"B": lambda: push(take(unpack(u32))),
            b"C": lambda: push(take(unpack(u8))),
            b"\x8e": lambda: push(take(unpack(u64))),
            b"\x96": lambda: push(take(unpack(u64))),
            b"V": lambda: push(text(self.line(), "raw-unicode-escape")),
            b"X": lambda: push(text(take(unpack(u32)))),
            b"\x8c": lambda: push(text(take(unpack(u8)))),
            b"\x8d": lambda: push(text(take(unpack(u64)))),
            b"}": lambda: push({}),
            b"d": self.new_dict,
            b"]": lambda: push([]),
            b"l": self.new_list,
            b")": lambda: push(()),
            b"t": lambda: push(self.tuple_of(self.pop_mark())),
            b"\x85": lambda: push(self.tuple_of(self.pop_many(1))),
            b"\x86": lambda: push(self.tuple_of(self.pop_many(2))),
            b"\x87": lambda: push(self.tuple_of(self.pop_many(3))),
            b"a": self.append_one,
            b"e": self.append_many,
            b"s": self.set_one,
            b"u": self.set_many,
            b"0": self.discard,
            b"1": self.discard_mark,
            b"p": lambda: self.remember(self.decimal(self.line())),
            b"q": lambda: self.remember(unpack(u8)),
            b"r": lambda: self.remember(unpack(u32)),
            b"\x94": lambda: self.remember(len(self.memo)),
            b"g": lambda: self.recall(self.decimal(self.line())),
            b"h": lambda: self.recall(unpack(u8)),
            b"j": lambda: self.recall(unpack(u32)),
            b"c": self.global_line,
            b"\x93": self.stack_global,
            b"R": self.reduce,
            b"b": self.build,
        }
        return {code[0]: action for code, action in table.items()}

    def run(self) -> object:
        """Run the opcodes up to STOP; the one value left is the file's."""
        while self.pos < len(self.data):
            opcode = self.data[self.pos]
            self.pos += 1
            if opcode == ord("."):
                if self.marks or len(self.stack) != 1:
                    raise _Damaged("STOP with other than one value on the stack")
                if self.pos != len(self.data):
                    raise _Damaged(f"{len(self.data) - self.pos:,} bytes after its STOP opcode")
                return self.stack[0]
            action = self.handlers.get(opcode)
            if action is None:
                name = _OPCODE_NAMES.get(opcode)
                if name is None:
                    raise _Damaged(f"unknown opcode 0x{opcode:02x}")
                raise _Refused(f"the opcode {name}")
            action()
        raise _Damaged("it ends before its STOP opcode")


def _finish(value: object) -> dict[str | bytes, Any]:
    """The file's dict, checked whole: lists of one kind, and at most one array, built."""
    if type(value) is not dict:
        kind = "an array" if isinstance(value, _Array) else type(value).__name__
        raise _Refused(f"a {kind} at the top (expected a dict)")
    arrays = 0
    result: dict[str | bytes, Any] = {}
    for key, item in value.items():
        if isinstance(item, _Array):
            if item.value is None:
                raise _Refused(f"an array without its data for {_show(key)}")
            arrays += 1
            item = item.value
        elif type(item) is list and not (
            all(type(n) is int for n in item) or all(type(s) in (str, bytes) for s in item)
        ):
            raise _Refused(f"a list mixing integers and strings for {_show(key)}")
        result[key] = item
    if arrays > 1:
        raise _Refused(f"{arrays} arrays (CIFAR-10's batches hold one)")
    return result


def read_pickle(data: bytes, subject: str) -> dict[str | bytes, Any]:
    """The dict pickled in ``data``, a file of CIFAR-10's Python version named ``subject``:
    keys as written (bytes from Python 2, text from Python 3), strings, integers, lists of
    them, and its one uint8 array as a NumPy array identikit made from the file's bytes.

    Nothing in ``data`` is called or handed to ``pickle`` or NumPy: a name other than the
    constructors of such a dict (``os.system``, ``builtins.eval``, a class of its own), a
    dtype other than uint8, any other state, or a malformed file is a one-line
    :class:`DataError` naming ``subject``.
    """
    machine = _Machine(bytes(data))
    try:
        return _finish(machine.run())
    except _Refused as exc:
        raise DataError(
            f"{subject}: a pickle that asks for {exc}; refused (only a dict of strings, "
            "integers, lists of them and one uint8 array is read from CIFAR-10's pickles)"
        ) from None
    except _Damaged as exc:
        raise DataError(
            f"{subject}: damaged or unreadable pickle ({exc}, at byte {machine.pos:,}); "
            "download or convert the file again"
        ) from None
