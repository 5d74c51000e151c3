"""Scoring engines against hostile or damaged inputs: hand-edited tuning caches, cached model
files cut short, ONNX models whose outputs have the wrong shape, models that return NaN, and
models of 100,000 classes. Everything real: PyTorch, ONNX Runtime, files on disk."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier, load_classifier
from identikit.engines import tuning
from identikit.strategies import advance, initial_state, make_strategy
from identikit.strategies.base import GROUP_BYTES, GROUP_IMAGES, SearchState, group_runs
from identikit.strategies.stopping import Budget

MANY_CLASSES = 100_000


@pytest.fixture(autouse=True)
def quick_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter timings: these tests check what is chosen and kept, not the speeds."""
    monkeypatch.setattr(tuning, "MEASURE_SECONDS", 0.02)
    monkeypatch.setattr(tuning, "ROUNDS", 1)


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """Whatever a test's choice does to PyTorch's thread count is undone for the next test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def linear(classes: int = 10, seed: int = 0) -> nn.Module:
    """A linear model of ``classes`` classes with confident, seed-dependent outputs."""
    torch.manual_seed(seed)
    layer = nn.Linear(784, classes)
    with torch.no_grad():
        layer.weight.normal_(0, 0.05)
    return nn.Sequential(nn.Flatten(), layer).eval()


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


def one_line(error: pytest.ExceptionInfo[IdentikitError]) -> str:
    message = str(error.value)
    assert "\n" not in message.strip() and "internal error" not in message
    return message


def only_entry(cache: Path) -> dict[str, Any]:
    entries = json.loads((cache / tuning.CACHE_FILE).read_text())
    assert isinstance(entries, dict) and len(entries) == 1
    (entry,) = entries.values()
    assert isinstance(entry, dict)
    return entry


def channels_last(cache: Path) -> Classifier:
    """A classifier whose chunk size (and thread count) is measured, or read from ``cache``."""
    return Classifier(linear(), backend="channels_last", cache_dir=cache)


def assert_valid_and_kept(classifier: Classifier, cache: Path) -> None:
    """The choice was measured, written over what was cached, and is read back next time."""
    choice = classifier.choice
    assert choice.how == "measured"
    assert only_entry(cache) == choice.record()
    assert type(choice.threads) is int and 1 <= choice.threads <= tuning.PROCESS_THREADS
    assert torch.get_num_threads() == choice.threads  # applied, and sane
    again = channels_last(cache)
    assert again.choice.how == "cached" and again.choice.record() == choice.record()


# --- 1. The tuning cache is a file anyone can edit --------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threads", 100_000),
        ("threads", 0),
        ("threads", "2"),
        ("chunk_size", True),
        ("chunk_size", -5),
        ("chunk_size", 10**12),
        ("backend", "tensorrt"),
        ("backend", "eager"),  # a real engine, but not the one asked for
        ("precision", "int8"),
        ("images_per_s", -1.0),
        ("images_per_s", 1e999),  # JSON's way to write infinity
        ("rates", [1, 2]),
        ("rates", {"eager@64": "fast"}),
        ("skipped", {"onnx": 3}),
        ("measured", 20240101),
        ("surprise", 1),  # a field no choice has
    ],
)
def test_hand_edited_cache_entries_are_measured_again(
    field: str, value: object, tmp_path: Path
) -> None:
    first = channels_last(tmp_path)
    assert first.choice.how == "measured"
    entries = json.loads((tmp_path / tuning.CACHE_FILE).read_text())
    for entry in entries.values():
        entry[field] = value
    (tmp_path / tuning.CACHE_FILE).write_text(json.dumps(entries))
    assert_valid_and_kept(channels_last(tmp_path), tmp_path)


def test_a_cache_file_that_is_no_json_object_or_no_file_is_replaced(tmp_path: Path) -> None:
    not_an_object = tmp_path / "list"
    not_an_object.mkdir()
    (not_an_object / tuning.CACHE_FILE).write_text("[]")
    assert_valid_and_kept(channels_last(not_an_object), not_an_object)
    folder = tmp_path / "folder"
    (folder / tuning.CACHE_FILE).mkdir(parents=True)  # an empty folder where the file belongs
    assert_valid_and_kept(channels_last(folder), folder)
    assert (folder / tuning.CACHE_FILE).is_file()


# --- 2. Cached exports that fail to load are made again ---------------------------------------


def cut_short(path: Path) -> None:
    """What a full disk or a kill mid-write leaves: the first half of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_cached_export_is_rebuilt_and_used(tmp_path: Path) -> None:
    model = linear()
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        eager = torch.softmax(model(images), dim=1)
    first = Classifier(model, backend="onnx", cache_dir=tmp_path)
    assert first.choice.backend == "onnx" and first.choice.how == "measured"
    (export,) = (tmp_path / "onnx").glob("*.onnx")
    whole = export.stat().st_size
    cut_short(export)
    # the cached choice is read, its export fails to load, and is made again in the same call
    again = Classifier(model, backend="onnx", cache_dir=tmp_path)
    assert again.choice.backend == "onnx" and again.choice.how == "cached"
    assert again.scorer.backend == "onnx"
    assert (again.probabilities(images) - eager).abs().max() <= 1e-5
    assert export.stat().st_size == whole
    # and when measuring, not reading the cache
    cut_short(export)
    measured = Classifier(model, backend="onnx", cache_dir=tmp_path, remeasure=True)
    assert measured.choice.backend == "onnx" and measured.choice.how == "measured"
    assert export.stat().st_size == whole


def test_a_truncated_int8_file_is_rebuilt_and_the_users_file_kept(tmp_path: Path) -> None:
    user_file = export_onnx(linear(), tmp_path / "users.onnx")
    original = user_file.read_bytes()
    cache = tmp_path / "cache"
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    fp32 = load_classifier(user_file, device="cpu", cache_dir=cache)
    load_classifier(user_file, device="cpu", precision="int8", cache_dir=cache)
    (int8,) = (cache / "onnx").glob("*-int8.onnx")
    cut_short(int8)
    low = load_classifier(user_file, device="cpu", precision="int8", cache_dir=cache)
    assert low.scorer.precision == "int8"
    assert (low.score(images).exp() - fp32.probabilities(images)).abs().max() < 0.05
    assert [p.name for p in (cache / "onnx").glob("*.onnx")] == [int8.name]
    assert user_file.read_bytes() == original


def test_a_users_onnx_file_is_never_deleted(tmp_path: Path) -> None:
    """Not when it differs from the module it is checked against, nor when it is damaged."""
    user_file = export_onnx(linear(seed=1), tmp_path / "users.onnx")
    original = user_file.read_bytes()
    model = linear(seed=0)
    probes = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    target = tuning.Target(
        module=model,
        onnx_path=user_file,
        device=torch.device("cpu"),
        reference=lambda x: model(x).detach(),
        probabilities=lambda out: torch.softmax(out, dim=1),
        probes=probes,
        signature="users",
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(IdentikitError, match="differs from eager PyTorch") as error:
        tuning.choose(target, backend="onnx", precision="fp32", chunk_size=64)
    one_line(error)
    assert user_file.read_bytes() == original
    cut_short(user_file)
    damaged = user_file.read_bytes()
    with pytest.raises(IdentikitError, match=r"users\.onnx") as error:
        load_classifier(user_file, device="cpu", backend="onnx", cache_dir=tmp_path / "cache")
    one_line(error)
    assert user_file.read_bytes() == damaged


# --- 3 and 6. Models of many classes ----------------------------------------------------------


def test_group_sizes_shrink_with_the_number_of_classes() -> None:
    # 10-class models of 28 x 28 images keep the groups they always had (resumption needs them)
    for cost in (1, 7, 30, 100, 108, 500, 508, 16_384, 50_000):
        assert group_runs(cost, 10) == max(1, GROUP_IMAGES // cost)
    # a 100,000-class model: candidates and outputs of one group stay within the budget
    for cost in (1, 50, 100):
        runs = group_runs(cost, MANY_CLASSES)
        assert runs >= 1 and runs * cost * 4 * (784 + 2 * MANY_CLASSES) <= GROUP_BYTES
    assert GROUP_BYTES <= 256 * 2**20
    assert group_runs(50, MANY_CLASSES) == 3
    assert group_runs(2_000, MANY_CLASSES) == 1  # at least one run, while its step fits the limit


@pytest.fixture(scope="module")
def many_classes() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, MANY_CLASSES)).eval()


def search_once(classifier: Classifier, runs: int) -> tuple[SearchState, list[int]]:
    """One iteration of ``runs`` runs at 50 candidates each; the images each group scored."""
    strategy = make_strategy("random-masks", candidates=50)
    targets = [MANY_CLASSES - 1 - r for r in range(runs)]
    state = initial_state(classifier, targets, list(range(runs)))
    scored: list[int] = []
    counted = [classifier.queries]

    def commit(_: SearchState) -> None:
        scored.append(classifier.queries - counted[0])
        counted[0] = classifier.queries

    advance(state, strategy, classifier, [Budget(10_000)], on_commit=commit, max_iterations=1)
    return state, scored


def test_a_search_of_a_100000_class_model_scores_in_bounded_groups(many_classes: nn.Module) -> None:
    classifier = Classifier(many_classes)
    assert classifier.num_classes == MANY_CLASSES
    state, scored = search_once(classifier, runs=4)
    assert scored == [3 * 50, 50]  # three runs fit a group's memory, the fourth makes its own
    assert (state.iterations == 1).all() and (state.queries == 51).all()
    assert torch.isfinite(state.scores).all()


def test_a_100000_class_onnx_model_searches(many_classes: nn.Module, tmp_path: Path) -> None:
    path = export_onnx(many_classes, tmp_path / "many.onnx")
    classifier = load_classifier(path, device="cpu", cache_dir=tmp_path / "cache")
    assert classifier.num_classes == MANY_CLASSES
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager = torch.log_softmax(many_classes(images), dim=1)
    assert (classifier.log_probabilities(images) - eager).abs().max() <= 1e-4
    state, scored = search_once(classifier, runs=4)
    assert scored == [3 * 50, 50] and (state.iterations == 1).all()
    assert torch.isfinite(state.scores).all()


# --- 4. ONNX outputs that are not (N, classes) ------------------------------------------------


class Reshaped(nn.Module):
    """A linear model whose (N, 10) outputs come back reshaped by ``how``."""

    def __init__(self, how: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.how(self.linear(x.flatten(1)))


def with_a_dimension(out: torch.Tensor) -> torch.Tensor:
    return out.unsqueeze(-1)


def flattened(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(-1)


@pytest.mark.parametrize(("how", "shape"), [(with_a_dimension, "(4, 10, 1)"), (flattened, "(40)")])
def test_onnx_outputs_of_another_rank_are_refused(
    how: Callable[[torch.Tensor], torch.Tensor], shape: str, tmp_path: Path
) -> None:
    path = export_onnx(Reshaped(how), tmp_path / "model.onnx")
    with pytest.raises(IdentikitError) as error:
        load_classifier(path, device="cpu")
    assert one_line(error) == (
        f"model.onnx: output 'output' has shape {shape}; expected (N, classes)"
    )


def test_onnx_outputs_of_another_rank_at_the_command_line(tmp_path: Path) -> None:
    path = export_onnx(Reshaped(with_a_dimension), tmp_path / "model.onnx")
    args = ("search", "--model", str(path), "--out", str(tmp_path / "out"), "--runs", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "identikit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "IDENTIKIT_DATA": str(tmp_path / "data")},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "model.onnx: output 'output' has shape (4, 10, 1); expected (N, classes)" in last


# --- 5. Messages name the model ---------------------------------------------------------------


class NotANumber(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 10), float("nan"))


def nan_target(tmp_path: Path, name: str | None = None) -> tuning.Target:
    model = NotANumber()
    target = tuning.Target(
        module=model,
        onnx_path=None,
        device=torch.device("cpu"),
        reference=model,
        probabilities=lambda out: torch.softmax(out, dim=1),
        probes=torch.rand(8, 1, 28, 28),
        signature="nan",
        cache_dir=tmp_path,
    )
    return target if name is None else dataclasses.replace(target, name=name)


def test_when_no_engine_can_run_a_model_the_message_names_it(tmp_path: Path) -> None:
    with pytest.raises(IdentikitError) as error:
        tuning.choose(
            nan_target(tmp_path, name="nan.pt"), backend="eager", precision="fp32", chunk_size=None
        )
    assert one_line(error) == (
        "no scoring engine can run nan.pt: eager: returns NaN or infinite outputs"
    )
    with pytest.raises(IdentikitError, match="no scoring engine can run the model: eager"):
        tuning.choose(nan_target(tmp_path), backend="eager", precision="fp32", chunk_size=None)
