"""Checkpoints: round trips, format versions and input shapes, and every file that is not one
(pickled code, damaged, fuzzed, ONNX, TorchScript, a bare state_dict, a named pipe, absurd
fields) refused in one line before any model is built."""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identikit.base.errors import CheckpointError
from identikit.data.datasets import MNIST_SHAPE
from identikit.models import ARCHITECTURES, build_model
from identikit.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from tests.helpers import (
    EAGER_CPU,
    NAN,
    assert_one_line_error,
    assert_refused,
    error_lines,
    run_cli,
    run_main,
    softmax_model,
    the_error_line,
)

ALL = sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = build_model(name).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, architecture=name, metadata={"test_accuracy": 0.5, "seed": 1})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert meta["architecture"] == name and meta["test_accuracy"] == 0.5
    assert isinstance(load_model(path), torch.nn.Module)
    torch.load(path, weights_only=True)  # loads without unpickling code


def write_payload(path: Path, payload: object) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())


def read_payload(path: Path) -> dict[str, object]:
    payload = torch.load(path, weights_only=True)
    assert isinstance(payload, dict)
    return payload


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch EXPLOITED",))


def test_pickled_code_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    write_payload(path, {"format": "identikit-checkpoint", "payload": _Exploit()})
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "EXPLOITED").exists()
    path.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "EXPLOITED").exists()


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    model = build_model("softmax")
    state = model.state_dict()
    cases = {
        "missing.pt": None,
        "random.pt": os.urandom(4096),
        "empty.pt": b"",
    }
    for name, blob in cases.items():
        if blob is not None:
            (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)
    base = {"format": "identikit-checkpoint", "version": 1, "num_classes": 10, "metadata": {}}
    write_payload(tmp_path / "arch.pt", {**base, "architecture": "resnet", "state_dict": state})
    with pytest.raises(CheckpointError, match="unknown model architecture 'resnet'"):
        load_checkpoint(tmp_path / "arch.pt")
    write_payload(tmp_path / "shape.pt", {**base, "architecture": "cnn", "state_dict": state})
    with pytest.raises(CheckpointError, match="do not fit architecture 'cnn'"):
        load_checkpoint(tmp_path / "shape.pt")
    write_payload(tmp_path / "plain.pt", state)
    with pytest.raises(CheckpointError, match="not an identikit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_a_number_cut_short_inside_the_pickle_is_a_clear_error(tmp_path: Path) -> None:
    """A checkpoint whose pickle ends inside a string's 4-byte length: the weights-only
    unpickler reads the length with struct, which raises struct.error (found by the fuzz test
    below on torch 2.11; torch 2.13 does the same)."""
    original = zipfile.ZipFile(io.BytesIO(VALID))
    cut = io.BytesIO()
    with zipfile.ZipFile(cut, "w") as copy:
        for info in original.infolist():
            data = original.read(info.filename)
            # PROTO 2, then BINUNICODE ('X') and 2 of the 4 bytes of its length
            copy.writestr(
                info, b"\x80\x02X\x01\x00" if info.filename.endswith("data.pkl") else data
            )
    path = tmp_path / "cut.pt"
    path.write_bytes(cut.getvalue())
    with pytest.raises(CheckpointError, match=r"cut.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_checkpoints_carry_their_version_and_input_shape(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("softmax"), architecture="softmax", metadata={})
    payload = read_payload(path)
    assert payload["version"] == 1 and payload["input_shape"] == [1, 28, 28]
    assert load_checkpoint(path)[1]["input_shape"] == MNIST_SHAPE
    # Written before versions and shapes were recorded: version 1, of MNIST's shape.
    old = {k: v for k, v in payload.items() if k not in ("version", "input_shape")}
    write_payload(tmp_path / "old.pt", old)
    _, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta["input_shape"] == MNIST_SHAPE and meta["architecture"] == "softmax"


def test_a_checkpoint_of_a_newer_identikit_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("softmax"), architecture="softmax", metadata={})
    payload = read_payload(path)
    write_payload(tmp_path / "new.pt", {**payload, "version": 2})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "new.pt")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "new.pt") in message
    assert "newer identikit (checkpoint format version 2; this one reads up to 1)" in message
    for version in ("1", 0, True, 1.0):
        write_payload(tmp_path / "odd.pt", {**payload, "version": version})
        with pytest.raises(CheckpointError, match="'version' must be a whole number >= 1"):
            load_checkpoint(tmp_path / "odd.pt")
    for shape in ([1, 28], [1, 28, "28"], [0, 28, 28], "1x28x28"):
        write_payload(tmp_path / "shape.pt", {**payload, "input_shape": shape})
        with pytest.raises(CheckpointError, match=r"'input_shape'|image channels"):
            load_checkpoint(tmp_path / "shape.pt")
    # A shape the weights were not made for.
    write_payload(tmp_path / "shape.pt", {**payload, "input_shape": [3, 32, 32]})
    with pytest.raises(CheckpointError, match=r"do not fit architecture 'softmax' for images"):
        load_checkpoint(tmp_path / "shape.pt")
    # A huge one is refused by the image limit, as --input-shape is, before it is allocated.
    write_payload(tmp_path / "shape.pt", {**payload, "input_shape": [1, 100_000, 100_000]})
    with pytest.raises(CheckpointError, match=r"'input_shape' \(1x100000x100000\).*LIMIT_IMAGE"):
        load_checkpoint(tmp_path / "shape.pt")


def softmax_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_model("softmax").state_dict().items()}


def save_payload(path: Path, **changes: Any) -> Path:
    """A softmax checkpoint's payload with some fields changed (``None``: removed)."""
    payload: dict[str, Any] = {
        "format": "identikit-checkpoint",
        "version": 1,
        "architecture": "softmax",
        "num_classes": 10,
        "state_dict": softmax_state(),
        "metadata": {"test_accuracy": 0.5},
    }
    payload.update(changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


BAD_PAYLOADS = [
    ({"num_classes": -1}, "'num_classes' must be at least 2"),
    ({"num_classes": 1}, "'num_classes' must be at least 2"),
    ({"num_classes": True}, "'num_classes' must be a whole number"),
    ({"num_classes": 10.0}, "'num_classes' must be a whole number"),
    ({"num_classes": [10]}, "'num_classes' must be a whole number"),
    ({"num_classes": 10**9}, "IDENTIKIT_LIMIT_CLASSES"),
    ({"num_classes": 4_000_000}, "IDENTIKIT_LIMIT_CLASSES"),
    ({"num_classes": 12}, "declares 12 classes but its output layer has 10 rows"),
    ({"state_dict": {"linear.weight": [1.0], "linear.bias": torch.zeros(10)}}, "not a named"),
    ({"state_dict": {"linear.bias": torch.zeros(10)}}, "no output layer"),
    ({"metadata": [1, 2]}, "'metadata' must be a dictionary"),
    ({"metadata": "fine"}, "'metadata' must be a dictionary"),
    ({"metadata": {"test_accuracy": "high"}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": 1.5}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": NAN}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": [0.9]}}, "'test_accuracy'"),
    ({"metadata": {"epochs": -1}}, "'epochs' must be a whole number >= 0"),
    ({"metadata": {"epochs": 2.5}}, "'epochs'"),
    ({"metadata": {"seed": "zero"}}, "'seed' must be a whole number"),
    ({"metadata": {"seed": True}}, "'seed'"),
    ({"metadata": {"precision": 16}}, "'precision' must be text"),
]


@pytest.mark.parametrize(("changes", "fragment"), BAD_PAYLOADS)
def test_checkpoint_fields_are_checked(
    tmp_path: Path, changes: dict[str, Any], fragment: str
) -> None:
    path = save_payload(tmp_path / "odd.pt", **changes)
    with pytest.raises(CheckpointError, match=re.escape(fragment)) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and "odd.pt" in str(caught.value)


def test_many_classes_are_refused_before_any_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small file whose output layer claims 4,000,000 rows through a stride-0 view: refused
    # on what it declares, before build_model would allocate 4,000,000 x 784 weights.
    huge = torch.zeros(1).expand(4_000_000, 784)
    state = {"linear.weight": huge, "linear.bias": torch.zeros(1).expand(4_000_000)}
    path = save_payload(tmp_path / "huge.pt", num_classes=4_000_000, state_dict=state)
    assert path.stat().st_size < 100_000
    built: list[str] = []
    monkeypatch.setattr("identikit.models.checkpoint.build_model", lambda *a: built.append("x"))
    with pytest.raises(CheckpointError, match="IDENTIKIT_LIMIT_CLASSES"):
        load_checkpoint(path)
    assert not built


def test_checkpoint_with_absent_optional_fields_still_loads(tmp_path: Path) -> None:
    path = save_payload(tmp_path / "bare.pt", metadata={"test_accuracy": None, "note": [1]})
    _, meta = load_checkpoint(path)
    assert meta["num_classes"] == 10 and meta["note"] == [1]


def test_ceiling_on_a_bad_checkpoint_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = save_payload(tmp_path / "odd.pt", num_classes=10**9)
    result = run_main(capsys, "ceiling", "--model", str(path))
    assert_refused(result, "identikit: error:", "IDENTIKIT_LIMIT_CLASSES")


def test_export_of_a_torchscript_file_asks_for_trust(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], tmp_path: Path
) -> None:
    """export takes TorchScript and ONNX models now (issue 29), a TorchScript one only with
    --trust-code, since loading it runs its code."""
    args = ["export", "--model", str(models["torchscript"]), "--out", str(tmp_path / "a.onnx")]
    assert_refused(run_main(capsys, *args), "is TorchScript", "--trust-code")
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.parametrize("command", ["ceiling"])
@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("onnx", "not a PyTorch zip file"), ("torchscript", "is TorchScript, not an identikit")],
)
def test_other_model_formats_are_named(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    command: str,
    kind: str,
    fragment: str,
) -> None:
    args = [command, "--model", str(models[kind])]
    if command == "export":
        args += ["--format", "onnx", "--out", str(tmp_path / "again.onnx")]
    result = run_main(capsys, *args)
    assert_refused(result, "identikit: error:", fragment)
    assert "possibly code" not in error_lines(result[2])[0]


def test_a_named_pipe_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)
    assert_refused(run_main(capsys, "ceiling", "--model", str(pipe)), "named pipe")


@pytest.mark.parametrize("case", ["random", "unknown-architecture", "wrong-shape", "pickle"])
def test_bad_checkpoints_at_the_cli(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.pt"
    state = build_model("softmax").state_dict()
    base = {"format": "identikit-checkpoint", "version": 1, "num_classes": 10, "metadata": {}}
    payload: object = {
        "random": None,
        "unknown-architecture": {**base, "architecture": "vgg", "state_dict": state},
        "wrong-shape": {**base, "architecture": "cnn", "state_dict": state},
        "pickle": {**base, "architecture": "softmax", "state_dict": state, "x": io.StringIO()},
    }[case]
    if payload is None:
        path.write_bytes(os.urandom(5000))
    else:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
    proc = run_cli("search", "--model", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "bad.pt")


def _valid_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "identikit-checkpoint",
            "version": 1,
            "architecture": "softmax",
            "num_classes": 10,
            "state_dict": build_model("softmax").state_dict(),
            "metadata": {"seed": 1},
        },
        buffer,
    )
    return buffer.getvalue()


VALID = _valid_checkpoint()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzzed_checkpoints_load_or_fail_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    blob = bytearray(VALID)
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(blob) - 1))
            blob[position] = data.draw(st.integers(0, 255))
    else:
        blob = bytearray(data.draw(st.binary(max_size=2000)))
    path = tmp_path / "fuzz.pt"
    path.write_bytes(bytes(blob))
    try:
        model, _ = load_checkpoint(path)
    except CheckpointError:
        return
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_bare_state_dict_says_how_to_bring_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(softmax_model().state_dict(), path)
    code, _, err = run_main(
        capsys, "search", "--model", str(path), "--out", str(tmp_path / "out"), *EAGER_CPU
    )
    line = the_error_line(code, err)
    assert "weights.pt is not an identikit checkpoint but a bare state_dict" in line
    assert "(weights without the architecture)" in line
    assert "torch.onnx.export(" in line
