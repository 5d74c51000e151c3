"""A damaged sweep state is one line naming the file, never a resume from wrong numbers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.strategies.base import RunHooks, SearchState
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from identikit.sweeps.sweep_state import STATE_FILE, STATE_VERSION, load_state, merge_states
from tests.helpers import (
    CONFIG,
    assert_clean_error,
    classifier,
    rewrite_npz,
    run_main,
    same_results,
    search_args,
    stop_after,
)

QUIET = SweepOptions(progress=False)

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
    "version a text": lambda p: rewrite_npz(p, lambda a: {**a, "version": np.array("2")}),
    "nan images": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] * np.nan}),
    "images above 1": lambda p: rewrite_npz(p, lambda a: {**a, "images": a["images"] + 5}),
    "scores not its history's": lambda p: rewrite_npz(
        p, lambda a: {**a, "scores": a["scores"] * 0 - 5}
    ),
    "positive scores": lambda p: rewrite_npz(p, lambda a: {**a, "scores": a["scores"] * 0 + 2}),
    "history above 1": lambda p: rewrite_npz(p, lambda a: {**a, "history": a["history"] + 2}),
    "negative queries": lambda p: rewrite_npz(p, lambda a: {**a, "queries": -a["queries"] - 1}),
    "negative seconds": lambda p: rewrite_npz(p, lambda a: {**a, "seconds": np.array(-1.0)}),
    "version 0": lambda p: rewrite_npz(p, lambda a: {**a, "version": np.array(0)}),
    "version -5": lambda p: rewrite_npz(p, lambda a: {**a, "version": np.array(-5)}),
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
    code, _, err = run_main(capsys, *search_args(model_file, sweep))
    assert_clean_error(code, err, STATE_FILE)


def paused_sweep(folder: Path) -> None:
    """A sweep of the toy classifier stopped after two groups, its state saved in ``folder``."""
    sweep_to_folder(
        classifier(), CONFIG, folder, hooks=RunHooks(should_stop=stop_after(2)), options=QUIET
    )
    assert (folder / STATE_FILE).is_file()


def test_the_state_records_its_format_version(tmp_path: Path) -> None:
    paused_sweep(tmp_path)
    with np.load(tmp_path / STATE_FILE) as saved:
        assert int(saved["version"]) == STATE_VERSION


def without_version(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a state held before states recorded their format version."""
    return {name: array for name, array in arrays.items() if name != "version"}


def test_a_state_saved_before_versions_resumes_as_version_1(tmp_path: Path) -> None:
    paused_sweep(tmp_path / "old")
    rewrite_npz(
        tmp_path / "old" / STATE_FILE, lambda a: {k: v for k, v in a.items() if k != "version"}
    )
    resumed = sweep_to_folder(classifier(), CONFIG, tmp_path / "old", options=QUIET)
    assert resumed.resumed
    sweep_to_folder(classifier(), CONFIG, tmp_path / "whole", options=QUIET)
    same_results(tmp_path / "old", tmp_path / "whole")


def test_a_state_from_a_newer_identikit_is_refused_and_kept(tmp_path: Path) -> None:
    paused_sweep(tmp_path)
    newer = {"version": np.array(STATE_VERSION + 1)}
    rewrite_npz(tmp_path / STATE_FILE, lambda a: {**a, **newer})
    before = (tmp_path / STATE_FILE).read_bytes()
    with pytest.raises(IdentikitError, match=r"written by a newer identikit \(format version 3"):
        sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET)
    assert (tmp_path / STATE_FILE).read_bytes() == before


def test_parts_of_a_state_merge_back_into_it(tmp_path: Path) -> None:
    """A state split into strided parts (a cluster's shards) and merged is the state again."""
    sweep_to_folder(classifier(), CONFIG, tmp_path, options=QUIET)
    saved = load_state(tmp_path, torch.device("cpu"), classifier().info.input_shape)
    assert saved is not None
    state = saved[1]
    runs = len(state.seeds)
    parts = []
    for k in range(4):
        rows = list(range(k, runs, 4))
        index = torch.tensor(rows)
        part = SearchState(
            targets=state.targets[index],
            seeds=[state.seeds[r] for r in rows],
            images=state.images[index],
            scores=state.scores[index],
            status=state.status[index],
            iterations=state.iterations[index],
            queries=state.queries[index],
            stale=state.stale[index],
            history=[state.history[r] for r in rows],
            memory={key: value[index] for key, value in state.memory.items()},
        )
        parts.append((rows, part))
    merged = merge_states(parts[::-1], runs)  # in any order
    for name in ("targets", "images", "scores", "status", "iterations", "queries", "stale"):
        assert torch.equal(getattr(merged, name), getattr(state, name)), name
    assert merged.seeds == state.seeds and merged.history == state.history
    with pytest.raises(IdentikitError, match="each of its 9 runs once"):
        merge_states(parts[:3], runs)
    with pytest.raises(IdentikitError, match="each of its 9 runs once"):
        merge_states([*parts, parts[0]], runs)
