"""A worker's part: shards searched apart, each in a call of its own, end exactly as their
runs do in the whole sweep on one machine; a worker loads its model once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from identikit.cluster.model_source import LoadOptions, ModelSource
from identikit.cluster.shards import plan_shards, shard_name
from identikit.cluster.tasks import ShardTask, classifier_for, search_shard
from identikit.engines.options import EngineOptions
from identikit.sweeps.experiment import SweepConfig, sweep_identity
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from identikit.sweeps.sweep_state import load_state, merge_states
from tests.helpers import small_model

# ONNX Runtime scores an image the same whatever else is in its batch: a run's results are then
# its seed's alone, in any shard.
BATCH_FREE = LoadOptions(device="cpu", engine=EngineOptions(backend="onnx", chunk_size=64))


@pytest.mark.parametrize(
    "strategy", ["random-masks", "evolution"]
)  # evolution keeps per-run memory (its step size), which must travel with the shard
def test_shards_searched_apart_end_as_the_whole_sweep(
    model_file: Path, tmp_path: Path, strategy: str
) -> None:
    source = ModelSource.read(model_file, BATCH_FREE)
    classifier = source.load()
    settings = {"candidates": 30} if strategy == "random-masks" else {}
    config = SweepConfig(
        digits=(0, 3, 7),
        runs=3,
        strategy=strategy,
        strategy_settings=settings,
        max_queries=1500,
        seed=2,
    )
    sweep_to_folder(classifier, config, tmp_path / "whole", options=SweepOptions(progress=False))
    shape = classifier.info.input_shape
    whole = load_state(tmp_path / "whole", torch.device("cpu"), shape)
    assert whole is not None
    identity = sweep_identity(classifier, config)
    plan = plan_shards(9, 2, 30, shard_runs=2)
    parts = []
    for k in range(plan.shards):
        task = ShardTask(config, identity, k, tuple(plan.rows(k)))
        (tmp_path / shard_name(k)).write_bytes(search_shard(source, task, node="here"))
        saved = load_state(tmp_path, torch.device("cpu"), shape, shard_name(k))
        assert saved is not None
        record, state, _ = saved
        assert record["rows"] == plan.rows(k) and record["node"] == "here"
        assert record["engine"]["backend"] == "onnx"
        parts.append((plan.rows(k), state))
    merged, expected = merge_states(parts, 9), whole[1]
    for name in ("targets", "images", "scores", "status", "iterations", "queries", "stale"):
        assert torch.equal(getattr(merged, name), getattr(expected, name)), name
    assert merged.seeds == expected.seeds and merged.history == expected.history
    assert merged.memory.keys() == expected.memory.keys()
    for key in merged.memory:
        assert torch.equal(merged.memory[key], expected.memory[key]), key


def test_a_worker_loads_its_model_once(tmp_path: Path) -> None:
    first = ModelSource.read(small_model(tmp_path / "a.pt", seed=0), BATCH_FREE)
    second = ModelSource.read(small_model(tmp_path / "b.pt", seed=1), BATCH_FREE)
    loaded = classifier_for(first)
    assert classifier_for(first) is loaded
    other = classifier_for(second)
    assert other is not loaded and other.sha256 == second.sha256
