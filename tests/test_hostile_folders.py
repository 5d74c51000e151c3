"""Hostile folders and careless users: nothing runs that the user did not name, nothing
already computed is lost, and every damaged file is one line with exit code 2.

Each case here was an attack or an accident that once got through (see the issue "Nothing
lost, nothing run"): a test per case, so that it cannot come back.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base import atomic
from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.base.folder_lock import LOCK_FILE, locked_folder
from identikit.base.safe_files import read_npz, read_regular
from identikit.classifier.classifier import load_classifier
from identikit.cli import main
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.records import read_identikits, read_results
from identikit.sweeps.sweep import sweep_to_folder
from identikit.sweeps.sweep_state import STATE_FILE
from tests.helpers import small_model, stop_after

SWEEP = SweepConfig(
    digits=(0, 1),
    runs=2,
    strategy_settings={"candidates": 20},
    max_queries=400,
    patience=5 * 20,  # 5 iterations of 20 candidates
    seed=3,
)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    """What a command said on stderr, less the lines it prints on its way (engine choice)."""
    return [
        line
        for line in stderr.strip().splitlines()
        if ": scoring with " not in line and not line.startswith("measuring scoring engines")
    ]


def assert_clean_error(code: int, stderr: str, *fragments: str) -> None:
    """Exit 2, one line, no traceback, no internal error, naming every fragment."""
    lines = error_lines(stderr)
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("identikit"), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI in this process; its exit code and stderr."""
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def search_args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "search",
        "--model",
        str(model),
        "--out",
        str(out),
        "--digits",
        "0,1",
        "--runs",
        "2",
        "--candidates",
        "20",
        "--max-queries",
        "400",
        "--patience",
        "100",  # as SWEEP's patience
        "--seed",
        "3",
        "--backend",
        "eager",
        "--chunk-size",
        "64",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model(tmp_path_factory.mktemp("model") / "softmax.pt")


@pytest.fixture(scope="module")
def finished(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep with a certainty record and a comparison beside it."""
    root = tmp_path_factory.mktemp("finished")
    code = main([*search_args(model_file, root / "sweep")])
    assert code == 0
    (root / "certainty.json").write_text(
        json.dumps(
            {
                "blank": {
                    "n": 1,
                    "mean": 0.1,
                    "median": 0.1,
                    "above_0.6": 0,
                    "above_0.9": 0,
                    "above_0.99": 0,
                }
            }
        )
    )
    (root / "cmp").mkdir()
    (root / "cmp" / "compare.json").write_text(
        json.dumps(
            {
                "square": {
                    "success": {"0.99": 1.0, "0.999": 0.5, "0.9999": 0.0},
                    "median_queries": {"0.99": 40, "0.999": 90, "0.9999": None},
                    "seconds": 1.5,
                }
            }
        )
    )
    return root


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    """A fresh copy of the finished folder, to damage."""
    target = tmp_path / "copy"
    shutil.copytree(finished, target, symlinks=True)
    return target


# --- 1. Code runs only when the user names it ---------------------------------------------


class WritesAFile(nn.Module):
    """A TorchScript model whose code writes a file when it runs: what a hostile .pt can do."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.marker, shared=True, size=1, dtype=torch.uint8)
        return x.flatten(1)[:, :10] * 30 + written.float().sum() * 0


def hostile_torchscript(path: Path, marker: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(WritesAFile(str(marker))), str(path))
    return path


def test_torchscript_named_pt_does_not_run_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "written-by-the-model"
    model = hostile_torchscript(tmp_path / "cnn.pt", marker)
    refused = run_cli(*search_args(model, tmp_path / "out"))
    assert_clean_error(refused.returncode, refused.stderr, "cnn.pt", "TorchScript", "--trust-code")
    assert not marker.exists()
    trusted = run_cli(*search_args(model, tmp_path / "out"), "--trust-code")
    assert trusted.returncode == 0, trusted.stderr
    assert "runs with your permissions" in trusted.stderr
    assert marker.exists()  # so the refusal above was what kept it from running


def test_report_never_loads_the_model_a_folder_names(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared folder's results.json names a TorchScript program, with its true hash: the
    report replays nothing unless the user names a model, and never runs TorchScript
    without --trust-code."""
    marker = tmp_path / "written-by-the-model"
    evil = hostile_torchscript(tmp_path / "evil.pt", marker)
    results_file = copy / "sweep" / "results.json"
    results = json.loads(results_file.read_text())
    results["model"]["path"] = str(evil)
    results["model"]["sha256"] = __import__("hashlib").sha256(evil.read_bytes()).hexdigest()
    results_file.write_text(json.dumps(results))
    code, err = cli(capsys, "report", str(copy))
    assert code == 0, err
    assert not marker.exists()
    code, err = cli(capsys, "report", str(copy), "--model", str(evil))
    assert code == 0, err
    assert not marker.exists()
    assert "--trust-code" in (copy / "report.html").read_text()  # why there is no animation


def test_report_replays_only_the_model_named_and_matching(
    copy: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = small_model(tmp_path / "other.pt", seed=5)
    code, err = cli(capsys, "report", str(copy), "--model", str(other))
    assert code == 0, err
    assert "image/gif" not in (copy / "report.html").read_text()
    code, err = cli(capsys, "report", str(copy), "--model", str(model_file))
    assert code == 0, err
    assert "image/gif" in (copy / "report.html").read_text()


# --- 2. Links out of a results folder -----------------------------------------------------


def test_report_refuses_a_link_to_a_secret(copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nTOP-SECRET-TOKEN")
    (copy / "certainty.png").symlink_to(secret)
    proc = run_cli("report", str(copy))
    assert_clean_error(proc.returncode, proc.stderr, "certainty.png", "leads out")
    assert not (copy / "report.html").exists()


@pytest.mark.parametrize("name", ["results.json", "identikits.npz", "judge.json"])
def test_sweep_files_linked_out_are_refused(copy: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    target = copy / "sweep" / name
    if target.exists():
        shutil.copy(target, outside)
    else:
        outside.write_text("{}")
    target.unlink(missing_ok=True)
    target.symlink_to(outside)
    proc = run_cli("report", str(copy), "--no-animation")
    assert_clean_error(proc.returncode, proc.stderr, name, "leads out")


def test_linked_folders_are_not_followed(copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(copy / "sweep", elsewhere)
    (elsewhere / "results.json").write_text("{}")  # would fail if it were read
    (copy / "linked").symlink_to(elsewhere, target_is_directory=True)
    proc = run_cli("report", str(copy), "--no-animation")
    assert proc.returncode == 0, proc.stderr


# --- 3. Two processes, one folder ---------------------------------------------------------


def test_a_second_process_on_a_locked_folder_is_refused(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locked_folder(out):
        # Another process (flock is per open file, and the kernel arbitrates).
        proc = run_cli(*search_args(model_file, out))
    assert_clean_error(proc.returncode, proc.stderr, "in use by another identikit process")
    assert f"pid {os.getpid()}" in proc.stderr
    assert not (out / "results.json").exists()
    assert run_cli(*search_args(model_file, out)).returncode == 0  # free again


def test_the_lock_is_released_when_its_holder_is_killed(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from identikit.base.folder_lock import locked_folder\n"
            f"import time\nwith locked_folder({str(out)!r}):\n    print('held', flush=True)\n"
            "    time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    refused = run_cli(*search_args(model_file, out))
    assert_clean_error(refused.returncode, refused.stderr, f"pid {holder.pid}")
    holder.kill()
    holder.wait()
    assert run_cli(*search_args(model_file, out)).returncode == 0


def test_lock_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(victim)
    with pytest.raises(IdentikitError, match="cannot lock"), locked_folder(out):
        pass
    assert victim.read_text() == "keep me"


# --- 4. Devices, pipes and folders are never replaced -------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-dev-null"])
def test_atomic_writes_refuse_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/null")
    with pytest.raises(IdentikitError, match="refusing to replace it"):
        atomic.atomic_write_bytes(target, b"data")
    assert not target.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary file left


def test_export_to_a_pipe_is_refused(model_file: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    proc = run_cli("export", "--model", str(model_file), "--format", "onnx", "--out", str(pipe))
    assert_clean_error(proc.returncode, proc.stderr, "refusing to replace it")
    assert os.path.exists(pipe) and not pipe.is_file()


def test_a_long_output_name_fits(model_file: Path, tmp_path: Path) -> None:
    """A 250-character name is legal; its temporary name must be too (the limit is 255)."""
    out = tmp_path / ("m" * 245 + ".onnx")
    proc = run_cli("export", "--model", str(model_file), "--format", "onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


# --- 5. A finished sweep verifies its outputs ---------------------------------------------


@pytest.mark.parametrize("lost", ["grid.png", "identikits.npz", "results.json", "all"])
def test_a_finished_sweep_rebuilds_what_is_missing(
    copy: Path, model_file: Path, finished: Path, lost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    names = ["grid.png", "identikits.npz", "results.json"] if lost == "all" else [lost]
    for name in names:
        (sweep / name).unlink()
    code, err = cli(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert f"rebuilt {', '.join(sorted(names))} of the finished sweep" in err
    for name in names:
        assert (sweep / name).is_file()
    results = read_results(sweep)
    images, _ = read_identikits(sweep, results)
    original = read_results(finished / "sweep")
    assert [r["confidence"] for r in results["runs"]] == [r["confidence"] for r in original["runs"]]
    assert np.array_equal(images, read_identikits(finished / "sweep", original)[0])
    assert read_regular(sweep / "grid.png").startswith(b"\x89PNG")


def test_a_damaged_grid_is_rebuilt_without_state(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    (sweep / STATE_FILE).unlink()
    (sweep / "grid.png").write_bytes(b"half a png")
    code, err = cli(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert read_regular(sweep / "grid.png").startswith(b"\x89PNG")


def test_lost_identikits_without_state_are_a_clear_error(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    (sweep / STATE_FILE).unlink()
    (sweep / "identikits.npz").unlink()
    code, err = cli(capsys, *search_args(model_file, sweep))
    assert_clean_error(code, err, "identikits.npz", "delete")


# --- 6. Resuming with another engine --------------------------------------------------------


def test_resuming_with_another_engine_is_refused_unless_allowed(
    model_file: Path, tmp_path: Path
) -> None:
    def classifier(chunk: int) -> Any:
        return load_classifier(model_file, device="cpu", backend="eager", chunk_size=chunk)

    out = tmp_path / "out"
    paused = sweep_to_folder(classifier(64), SWEEP, out, progress=False, should_stop=stop_after(1))
    assert paused.results is None
    with pytest.raises(DifferentSweepError, match=r"--chunk-size 64.*--allow-engine-change"):
        sweep_to_folder(classifier(32), SWEEP, out, progress=False)
    # The same engine resumes as before.
    done = sweep_to_folder(classifier(32), SWEEP, out, progress=False, allow_engine_change=True)
    assert done.results is not None and done.resumed
    assert done.rebuilt == []  # a resumed sweep writes its outputs; it rebuilds nothing
    assert [e["chunk_size"] for e in done.results["engines"]] == [64, 32]
    assert read_results(out)["engines"] == done.results["engines"]


# --- 7. Leftovers of a kill ------------------------------------------------------------------


def test_temporary_files_of_a_killed_writer_are_removed(
    copy: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    leftovers = [
        sweep / f".results.json.k3j2{atomic.TEMPORARY_SUFFIX}",
        sweep / ".sweep-state.npz.a8b7c6.tmp",  # the name earlier versions used
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    keep = sweep / ".notes.tmp"  # not ours
    keep.write_text("mine")
    code, err = cli(capsys, *search_args(model_file, sweep))
    assert code == 0, err
    assert not any(p.exists() for p in leftovers)
    assert keep.exists()


# --- 8. Damaged or hand-edited folders -------------------------------------------------------


def rewrite_json(path: Path, change: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def rewrite_npz(path: Path, change: Callable[[dict[str, np.ndarray]], dict[str, Any]]) -> None:
    with np.load(path) as npz:
        arrays = dict(npz)
    buffer = io.BytesIO()
    np.savez(buffer, **change(arrays))
    path.write_bytes(buffer.getvalue())


def set_path(record: Any, keys: list[Any], value: Any) -> Any:
    target = record
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return record


DELETE = object()

RESULTS_CASES: dict[str, Callable[[Any], Any]] = {
    "empty object": lambda r: {},
    "a list": lambda r: [],
    "no runs": lambda r: set_path(r, ["runs"], DELETE),
    "runs cut short": lambda r: set_path(r, ["runs"], r["runs"][:1]),
    "confidence a string": lambda r: set_path(r, ["runs", 0, "confidence"], "high"),
    "confidence above 1": lambda r: set_path(r, ["runs", 0, "confidence"], 2.5),
    "digit out of range": lambda r: set_path(r, ["settings", "digits"], [0, 99]),
    "unknown strategy": lambda r: set_path(r, ["settings", "strategy"], "telepathy"),
    "negative runs": lambda r: set_path(r, ["settings", "runs"], -1),
    "classes True": lambda r: set_path(r, ["model", "classes"], True),
    "history too short": lambda r: set_path(r, ["runs", 1, "history"], []),
    "unknown status": lambda r: set_path(r, ["runs", 0, "status"], "bored"),
    "unknown setting": lambda r: set_path(r, ["settings", "colour"], "red"),
    "card accuracy a list": lambda r: set_path(r, ["model", "card", "test_accuracy"], [1]),
    # Valid JSON, but too large for a float: float() overflows where nan checks are made.
    "confidence of 400 digits": lambda r: set_path(r, ["runs", 0, "confidence"], 10**400),
    "setting of 400 digits": lambda r: set_path(
        r, ["settings", "strategy_settings", "mask_density"], 10**400
    ),
}


@pytest.mark.parametrize("case", sorted(RESULTS_CASES))
def test_damaged_results_json(copy: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_json(copy / "sweep" / "results.json", RESULTS_CASES[case])
    code, err = cli(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "results.json")


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b"\xff\xfe\x00", b"[" * 100_000, b'{"a": NaN}']
)
def test_unreadable_results_json(
    copy: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "sweep" / "results.json").write_bytes(content)
    code, err = cli(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "results.json")


def pickle_bytes() -> bytes:
    return pickle.dumps({"images": [1, 2, 3]})


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


IDENTIKIT_CASES: dict[str, Callable[[Path], object]] = {
    "a pickle": lambda p: p.write_bytes(pickle_bytes()),
    "a plain npy": lambda p: p.write_bytes(npy_bytes(np.zeros((4, 28, 28), np.float32))),
    "object arrays": lambda p: rewrite_npz(
        p, lambda a: {**a, "images": np.array([None] * 4, dtype=object)}
    ),
    "no digits": lambda p: rewrite_npz(p, lambda a: {"images": a["images"]}),
    "wrong shape": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"][:, :5]}),
    "empty": lambda p: rewrite_npz(
        p, lambda a: {"images": a["images"][:0], "digits": a["digits"][:0]}
    ),
    "other digits": lambda p: rewrite_npz(p, lambda a: {**a, "digits": a["digits"][::-1] + 1}),
    "pixels out of range": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] + 5}),
    "nan pixels": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] * np.nan}),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
}


@pytest.mark.parametrize("case", sorted(IDENTIKIT_CASES))
def test_damaged_identikits(copy: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    IDENTIKIT_CASES[case](copy / "sweep" / "identikits.npz")
    code, err = cli(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, "identikits.npz")


SIDE_FILES: dict[str, tuple[str, Any]] = {
    "judge a list": ("sweep/judge.json", []),
    "judge share a string": ("sweep/judge.json", {"judges": {"mlp": "most"}}),
    "judge share above 1": ("sweep/judge.json", {"judges": {"mlp": 3}}),
    "judge matrix not square": ("sweep/judge.json", {"transfer_matrices": {"mlp": [[1, 2]]}}),
    "certainty row a number": ("certainty.json", {"blank": 1}),
    "certainty lacks mean": ("certainty.json", {"blank": {"n": 1}}),
    "compare row empty": ("cmp/compare.json", {"square": {}}),
    "compare success a string": (
        "cmp/compare.json",
        {"square": {"success": {"0.99": "all"}, "median_queries": {}, "seconds": 1}},
    ),
}


@pytest.mark.parametrize("case", sorted(SIDE_FILES))
def test_damaged_verdicts_and_records(
    copy: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, content = SIDE_FILES[case]
    (copy / name).write_text(json.dumps(content))
    code, err = cli(capsys, "report", str(copy), "--no-animation")
    assert_clean_error(code, err, Path(name).name)


STATE_CASES: dict[str, Callable[[Path], object]] = {
    "empty file": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(os.urandom(300)),
    "identity a number": lambda p: rewrite_npz(p, lambda a: {**a, "identity": np.array(5)}),
    "identity not json": lambda p: rewrite_npz(p, lambda a: {**a, "identity": np.array("{")}),
    "images of another shape": lambda p: rewrite_npz(
        p, lambda a: {**a, "images": np.zeros((4, 1, 5, 5), np.float32)}
    ),
    "fewer targets": lambda p: rewrite_npz(p, lambda a: {**a, "targets": a["targets"][:2]}),
    "history lengths wrong": lambda p: rewrite_npz(
        p, lambda a: {**a, "history_lengths": a["history_lengths"] + 1}
    ),
    "nan history": lambda p: rewrite_npz(p, lambda a: {**a, "history": a["history"] * np.nan}),
    "unknown status": lambda p: rewrite_npz(p, lambda a: {**a, "status": a["status"] + 9}),
    "other seeds": lambda p: rewrite_npz(p, lambda a: {**a, "seeds": a["seeds"] + 1}),
    "no scores": lambda p: rewrite_npz(p, lambda a: {k: v for k, v in a.items() if k != "scores"}),
    "object array": lambda p: rewrite_npz(
        p, lambda a: {**a, "scores": np.array([None] * 4, dtype=object)}
    ),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_damaged_sweep_state(
    copy: Path, model_file: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = copy / "sweep"
    (sweep / "results.json").unlink()  # unfinished: the state is what a resume reads
    STATE_CASES[case](sweep / STATE_FILE)
    code, err = cli(capsys, *search_args(model_file, sweep))
    assert_clean_error(code, err, STATE_FILE)


# --- 10. Limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--digits", "0-99999999999"], "IDENTIKIT_LIMIT_CLASSES"),
        (["--runs", "10000000"], "IDENTIKIT_LIMIT_RUNS"),
        (["--candidates", "100000000"], "IDENTIKIT_LIMIT_CANDIDATES"),
    ],
)
def test_sizes_over_the_limits_are_refused_at_once(
    model_file: Path,
    tmp_path: Path,
    flags: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = search_args(model_file, tmp_path / "out")
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[args.index(flag) + 1] = value
    started = time.monotonic()
    code, err = cli(capsys, *args)
    assert_clean_error(code, err, fragment)
    assert time.monotonic() - started < 30  # refused before anything was allocated


def zip_bomb(path: Path, megabytes: int) -> None:
    """An .npz of zeros: tiny on disk, ``megabytes`` when inflated."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.zeros((megabytes, 1024, 256), np.float32))
    path.write_bytes(buffer.getvalue())


def test_an_npz_that_inflates_past_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "identikits.npz"
    zip_bomb(bomb, 8)
    assert bomb.stat().st_size < 100_000
    monkeypatch.setenv("IDENTIKIT_LIMIT_FILE_BYTES", str(4 << 20))
    with pytest.raises(IdentikitError, match="IDENTIKIT_LIMIT_FILE_BYTES"):
        read_npz(bomb)
    monkeypatch.setenv("IDENTIKIT_LIMIT_FILE_BYTES", str(16 << 20))
    assert read_npz(bomb)["images"].shape == (8, 1024, 256)  # lifted as the message says


def test_an_npz_whose_header_lies_is_refused_before_allocating(tmp_path: Path) -> None:
    """A header declaring 10^12 floats over a few bytes of data: no allocation is tried."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", member + b"\x00" * 16)
    with pytest.raises(IdentikitError, match="over the limit"):
        read_npz(path)


@pytest.mark.parametrize("kind", ["urandom", "fifo"])
def test_results_json_that_never_ends_or_blocks(copy: Path, kind: str) -> None:
    target = copy / "sweep" / "results.json"
    target.unlink()
    if kind == "urandom":
        target.symlink_to("/dev/urandom")
    else:
        os.mkfifo(target)
    proc = run_cli("report", str(copy), "--no-animation", timeout=60)
    assert_clean_error(proc.returncode, proc.stderr, "results.json")


# --- 11. Careless values -----------------------------------------------------------------------


def test_an_empty_out_is_refused(
    model_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = search_args(model_file, tmp_path)
    args[args.index("--out") + 1] = ""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []  # nothing written into the current folder


def test_a_file_name_that_is_not_utf8(model_file: Path, tmp_path: Path) -> None:
    strange = Path(os.fsdecode(bytes(tmp_path) + b"/model-\xff\xfe.pt"))
    shutil.copy(model_file, strange)
    out = tmp_path / "out"
    proc = run_cli(*search_args(strange, out))
    assert proc.returncode == 0, proc.stderr
    report = run_cli("report", str(tmp_path), "--model", str(strange))
    assert report.returncode == 0, report.stderr
    assert "model-\ufffd\ufffd.pt" in (tmp_path / "report.html").read_text()


def test_one_step_too_large_for_the_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups shrink with the classes, down to one run; a run whose own step is too large
    (many candidates of a model of many classes) is refused before it is allocated."""
    from identikit.strategies.base import group_runs

    with pytest.raises(IdentikitError, match="IDENTIKIT_LIMIT_STEP_BYTES"):
        group_runs(100_000, 100_000)
    monkeypatch.setenv("IDENTIKIT_LIMIT_STEP_BYTES", str(2**40))
    assert group_runs(100_000, 100_000) == 1
