"""Shared builders for the tests: toy models and datasets, the command line in a subprocess or in
this process, the checks several test modules make, and a reader of the report page. Test modules
import from here, never from one another; fixtures live in ``conftest.py``."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.cli import main
from identikit.data import datasets as data
from identikit.data.idx import encode_idx
from identikit.engines import choices
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.models.info import ModelInfo
from identikit.sweeps.experiment import SweepConfig

CHROMIUM = shutil.which("chromium")
"""The Debian chromium the report pages are rendered with, or None where it is not installed."""

_NO_BROWSER = (
    "Debian chromium is not installed"
    if CHROMIUM is None
    else "playwright is not installed"  # where nothing can be installed: a GPU machine
    if importlib.util.find_spec("playwright") is None
    else None
)
needs_browser = pytest.mark.skipif(_NO_BROWSER is not None, reason=_NO_BROWSER or "")
"""For a test that renders a page in chromium, driven by playwright: skips, saying which is
missing."""

NAN, INF = float("nan"), float("inf")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
"""For behaviour only a GPU has: skips, saying why, on a machine without one."""

DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
"""Devices to parametrize a test over: the CPU everywhere, a CUDA GPU where there is one."""

# --- The command line -------------------------------------------------------------------------

EAGER_CPU = ["--backend", "eager", "--chunk-size", "64", "--device", "cpu", "--no-progress"]
"""Engine flags that skip measuring engines: eager PyTorch on the CPU, no progress bars."""


def private_network() -> bool:
    """Whether this process sits in a network namespace of its own, with the loopback alone
    (``unshare --net``): where Ray tests run, Ray talking on 127.0.0.1 only."""
    try:  # the interfaces of this process's namespace (/sys/class/net shows the machine's)
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own (its engine choices and thread counts too)."""
    return subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line in this process: its exit code (argparse's too), stdout and stderr."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's errors leave through Parser.exit
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def is_info(line: str) -> bool:
    """A line a command prints on stderr on its way, before any error."""
    return ": scoring with " in line or line.startswith("measuring scoring engines")


def error_lines(stderr: str) -> list[str]:
    """What a command said on stderr, less the lines it prints on its way (engine choice)."""
    return [line for line in stderr.strip().splitlines() if line and not is_info(line)]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """The command exited 2 with one line of error, no traceback, naming every fragment."""
    assert proc.returncode == 2, proc.stderr
    # What the command said before the error (the scoring engine it chose) is not the error.
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_clean_error(code: int, stderr: str, *fragments: str) -> None:
    """Exit 2, one line, no traceback, no internal error, naming every fragment."""
    lines = error_lines(stderr)
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("identikit"), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_refused(result: tuple[int, str, str], *fragments: str) -> None:
    """A :func:`run_main` result that is one error line of identikit's or argparse's (``identikit
    search: error: argument ...``), with no traceback, naming every fragment."""
    code, _, err = result
    lines = error_lines(err)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert re.match(r"identikit( \w+)?: error: ", lines[0]), lines[0]
    assert "Traceback" not in lines[0] and "internal error" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def the_error_line(code: int, err: str) -> str:
    """The one ``identikit: error:`` line a command exited 2 with, the last thing it said."""
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("identikit: error:")]
    assert len(lines) == 1 and err.strip().endswith(lines[0]), err
    return lines[0]


def search_args(model: Path, out: Path, *extra: str) -> list[str]:
    """A search of two digits, two runs each, 20 candidates, that takes a second: the sweep
    that the tests of a finished folder damage, rebuild and resume."""
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
        "100",  # 5 iterations of 20 candidates
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


def report_search_args(model: Path, out: Path, *extra: str) -> list[str]:
    """A sweep of two digits, two runs each, that takes a second (the report pages' sweeps)."""
    return [
        "search",
        *("--model", str(model), "--out", str(out), "--digits", "0,1", "--runs", "2"),
        *("--max-queries", "400", "--seed", "3", "--backend", "eager", "--chunk-size", "64"),
        *("--device", "cpu", "--no-progress"),
        *extra,
    ]


# --- Datasets ---------------------------------------------------------------------------------


def make_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 28x28 uint8 'digits': class k is a bright bar at row 2k+4, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images, labels


def write_idx_folder(folder: Path, train: int = 200, test: int = 100, *, gz: bool = False) -> Path:
    """Write the four MNIST-named IDX files of a synthetic dataset into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = make_digits(n, seed)
        for name, array in zip(data._MNIST_FILES[split], (images, labels), strict=True):
            blob = encode_idx(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
    return folder


# --- Toy models -------------------------------------------------------------------------------


def toy_linear(seed: int = 0, scale: float = 0.05) -> nn.Sequential:
    """A linear model whose classes are reachable inside the pixel box."""
    torch.manual_seed(seed)
    linear = nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.normal_(0, scale)
        linear.bias.zero_()
    return nn.Sequential(nn.Flatten(), linear)


class Constant(nn.Module):
    """Ignores its input: every class has probability 0.1 whatever the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10) + 0 * x.flatten(1)[:, :1]


def softmax_model(*, seed: int = 0, scale: float = 0.05) -> nn.Module:
    """An untrained softmax model whose classes are reachable inside the pixel box."""
    torch.manual_seed(seed)
    model = build_model("softmax")
    linear = model.linear
    assert isinstance(linear, nn.Linear)
    with torch.no_grad():
        linear.weight.normal_(0, scale)
        linear.bias.zero_()
    return model


def small_model(path: Path, seed: int = 0) -> Path:
    """Save :func:`softmax_model` as a checkpoint at ``path`` (claiming 10% test accuracy)."""
    model = softmax_model(seed=seed)
    save_checkpoint(path, model, architecture="softmax", metadata={"test_accuracy": 0.1})
    return path


def seeded_linear(classes: int = 10, seed: int = 0) -> nn.Module:
    """A linear model of ``classes`` classes with confident, seed-dependent outputs."""
    torch.manual_seed(seed)
    layer = nn.Linear(784, classes)
    with torch.no_grad():
        layer.weight.normal_(0, 0.05)
    return nn.Sequential(nn.Flatten(), layer).eval()


def trained_like_cnn(seed: int = 0) -> torch.nn.Module:
    """The tutorial CNN with random weights scaled up so that its outputs are confident."""
    torch.manual_seed(seed)
    model = build_model("cnn")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return model.eval()


def export_onnx(module: nn.Module, path: Path) -> Path:
    """``module`` as an ONNX file of dynamic batch size (input ``input``, output ``output``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes
        torch.onnx.export(
            module.eval(),
            (torch.rand(2, 1, 28, 28),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            dynamo=False,
        )
    return path


class WritesAFile(nn.Module):
    """A TorchScript model whose code writes a file when it runs: what a hostile .pt can do."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.marker, shared=True, size=1, dtype=torch.uint8)
        return x.flatten(1)[:, :10] * 30 + written.float().sum() * 0


def hostile_torchscript(path: Path, marker: Path) -> Path:
    """Save :class:`WritesAFile` as TorchScript at ``path``: running it creates ``marker``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(WritesAFile(str(marker))), str(path))
    return path


# --- Scoring engines --------------------------------------------------------------------------


def channels_last_softmax(cache: Path) -> Classifier:
    """A softmax classifier on channels_last, its chunk size measured or read from ``cache``."""
    return Classifier(
        build_model("softmax"), engine=EngineOptions(backend="channels_last", cache_dir=cache)
    )


def edit_cached_choices(cache: Path, **changes: object) -> None:
    """Change fields of every choice cached in ``cache`` (``None``: remove the field)."""
    entries = choices.read_choices(cache)
    for record in entries.values():
        for key, value in changes.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
    choices.save_choices(cache, entries)


def one_line_message(error: pytest.ExceptionInfo[IdentikitError]) -> str:
    """The message of an error, checked to be one line and no internal error."""
    message = str(error.value)
    assert "\n" not in message.strip() and "internal error" not in message
    return message


# --- Files, damaged on purpose ----------------------------------------------------------------


def rewrite_json(path: Path, change: Callable[[Any], Any]) -> None:
    """Replace the JSON document in ``path`` with ``change`` of it."""
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def rewrite_npz(path: Path, change: Callable[[dict[str, np.ndarray]], dict[str, Any]]) -> None:
    """Replace the arrays of the .npz file ``path`` with ``change`` of them."""
    with np.load(path) as npz:
        arrays = dict(npz)
    buffer = io.BytesIO()
    np.savez(buffer, **change(arrays))
    path.write_bytes(buffer.getvalue())


def one_line_refusal(read: Callable[[], object], *fragments: str) -> None:
    """``read()`` raises a one-line IdentikitError naming every fragment."""
    with pytest.raises(IdentikitError) as caught:
        read()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# --- Sweeps -----------------------------------------------------------------------------------

CONFIG = SweepConfig(
    digits=(0, 3, 7),
    runs=3,
    strategy_settings={"candidates": 30},
    max_queries=1500,
    patience=15 * 30,  # 15 iterations of 30 candidates
    seed=2,
)
"""A small sweep of the toy :func:`classifier`: three digits, three runs each."""

TIMING = {"seconds", "queries_per_second"}
"""The fields of results.json that differ between two runs of the same sweep."""


def classifier(device: str = "cpu") -> Classifier:
    """The toy linear model as a classifier on ``device``, its checkpoint's hash given as
    'toy'."""
    return Classifier(toy_linear(scale=0.02), ModelInfo(sha256="toy"), device=device)


def same_results(a: Path, b: Path) -> None:
    """Two sweep folders hold identical identikits and results, bar timing fields."""
    with np.load(a / "identikits.npz") as x, np.load(b / "identikits.npz") as y:
        assert np.array_equal(x["images"], y["images"])
        assert np.array_equal(x["digits"], y["digits"])
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (a, b))
    for record in (ra, rb):
        for key in TIMING:
            record.pop(key)
        record["model"].pop("path")
    assert ra == rb


def stop_after(commits: int) -> Callable[[], bool]:
    """A should_stop callback that asks to stop once ``commits`` groups are committed."""
    calls = iter(range(10**9))
    return lambda: next(calls) >= commits


# --- The report page --------------------------------------------------------------------------


class Page(HTMLParser):
    """The text of a page by element: headings, data rows of each table, images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.text = ""
        self._heading: str | None = None
        self._tables: list[str] = []
        self._row: list[str] | None = None
        self._cell: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "h3":
            self._heading = ""
        elif tag == "table":
            self._tables.append(found.get("class") or found.get("id") or "")
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = ""
        elif tag == "th":
            self._row = None  # a header row: not data
        elif tag == "img":
            self.images.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._heading is not None:
            self.headings.append(" ".join(self._heading.split()))
            self._heading = None
        elif tag == "table":
            self._tables.pop()
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._tables:
            self.rows.setdefault(self._tables[-1], []).append(self._row)
            self._row = None

    def handle_data(self, text: str) -> None:
        self.text += text
        if self._heading is not None:
            self._heading += text
        if self._cell is not None:
            self._cell += text

    def table(self, name: str) -> list[list[str]]:
        """The data rows of the table of class (or id) ``name``."""
        return self.rows.get(name, [])


def read_page(folder: Path) -> Page:
    """The report page written into ``folder``."""
    return Page((folder / "report.html").read_text())
