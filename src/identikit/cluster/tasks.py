"""What a worker does with one shard: load the model (once per process), search the shard's
runs, and hand back their final state as the bytes of a state file.

Nothing here knows of Ray: :mod:`identikit.cluster.ray_sweep` runs :func:`search_shard` as a
Ray task, and a test runs it in-process. A run's result depends on its seed alone (see
:func:`~identikit.strategies.base.advance`), so a shard's runs end as they do in the whole
sweep on one machine, wherever the shard runs, provided the engine's scores of an image do not
depend on the rest of its batch (ONNX Runtime and eager PyTorch; PyTorch's channels_last can
differ in the last bits, see the README).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from identikit.base.data_free import data_free
from identikit.classifier.classifier import Classifier
from identikit.cluster.model_source import ModelSource
from identikit.strategies import PriorInputs, RunHooks, SearchState, advance, initial_state
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import engine_record
from identikit.sweeps.sweep_state import state_bytes


@dataclass(frozen=True)
class ShardTask:
    """One shard of a sweep: the sweep, its identity, which runs, and what the search needs.

    ``priors``: the inputs the strategy's priors were given on the driver (so that no worker
    reads data); ``data_free``: the sweep must read no data (a reconstruction), which the
    worker then enforces too.
    """

    config: SweepConfig
    identity: dict[str, Any]
    index: int
    rows: tuple[int, ...]
    priors: PriorInputs = field(default_factory=PriorInputs)
    data_free: bool = False


# The model a worker process loaded last, kept for its later shards: a Ray worker runs many
# tasks, and loading (and choosing an engine) is a shard's largest fixed cost.
_LOADED: dict[str, Classifier] = {}


def classifier_for(source: ModelSource) -> Classifier:
    """The Classifier of ``source`` in this process, loaded once."""
    key = f"{source.sha256}:{source.options!r}"
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = source.load()
    return _LOADED[key]


def search_shard(
    source: ModelSource,
    task: ShardTask,
    node: str = "",
    report: Callable[[SearchState], None] | None = None,
) -> bytes:
    """Search the runs of ``task`` to the end; the bytes of their state file, whose identity
    records the shard, the sweep, the engine that scored it and ``node`` (where it ran).
    ``report`` hears of the state after each group of runs is committed (progress)."""
    guard = data_free("a reconstruction") if task.data_free else contextlib.nullcontext()
    with guard:
        classifier = classifier_for(source)
        config = task.config
        layout = config.layout()
        runs = [layout[row] for row in task.rows]
        strategy = config.spec.build(task.priors).for_shape(classifier.info.input_shape)
        began = time.perf_counter()
        state = initial_state(
            classifier, [d for d, _, _ in runs], [s for _, _, s in runs], start=config.start
        )
        advance(state, strategy, classifier, config.rules(), hooks=RunHooks(on_commit=report))
        seconds = time.perf_counter() - began
    record = {
        "sweep": task.identity,
        "shard": task.index,
        "rows": list(task.rows),
        "engine": engine_record(classifier),
        "scoring": classifier.choice.record(),
        "host": socket.gethostname(),
        "node": node,
    }
    return state_bytes(record, state, seconds=seconds)
