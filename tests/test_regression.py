"""What identikit computes, pinned: every strategy's small sweep, hashed, against a record.

The guard for restructuring (issue "One clear house"): before a line moves, each strategy ran a
sweep of every digit, 2 runs, a fixed seed and budget, on a fixed model; the hashes of its
identikits' bytes and of its results (bar timings and the scoring record) are kept in
``tests/data/regression.json``. A change that alters any image or any result, even in its last
bit, fails here.

Floating-point results depend on the CPU's instruction set (another SIMD path rounds another
way, and a near-tie between two candidates then goes the other way), so the record names the
machine it was made on, and on another kind of CPU the test skips, saying so. Record again
with ``python tests/test_regression.py`` only when a change of results is intended.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from identikit.classifier.classifier import Classifier
from identikit.engines.options import EngineOptions
from identikit.models.info import ModelInfo
from identikit.strategies import STRATEGIES
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder

RECORD = Path(__file__).parent / "data" / "regression.json"
# Strategies added on a machine other than the record's (whose sweeps would be recorded with
# another CPU's rounding): swept here, but not yet in the record. Record again on the record's
# machine (`python tests/test_regression.py`) and empty this.
UNRECORDED = frozenset({"invert", "invert-black-box"})

# Budgets small enough to take a second or two each, large enough for several steps.
SWEEPS: dict[str, dict[str, Any]] = {
    "random-masks": {"strategy_settings": {"candidates": 100}, "max_queries": 1_000},
    "evolution": {"max_queries": 400},
    "square": {"max_queries": 400},
    "strokes": {"max_queries": 400},
    "gradient": {"max_queries": 60},
    "reconstruct": {"max_queries": 5 * 17 + 1},
    "pen-evolution": {"max_queries": 5 * 41 + 1},
    "invert": {"strategy_settings": {"steps": 5}, "max_queries": 5 * 2 + 1},
    "invert-black-box": {"strategy_settings": {"steps": 5, "samples": 4}, "max_queries": 5 * 6 + 1},
    "gradient-priors": {
        "strategy": "gradient",
        "strategy_settings": {"priors": "tv,l2,blur,jitter", "objective": "margin"},
        "max_queries": 60,
    },
}
# Timings and what chose the engine vary from run to run; everything else must not.
UNSTABLE = ("seconds", "queries_per_second", "scoring", "environment")


def fixed_model() -> nn.Module:
    """A small convolutional model with seeded weights, confident enough to converge on."""
    torch.manual_seed(20261128)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 12 * 12, 10),
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0)
    return model.eval()


# The vector instructions PyTorch's CPU kernels choose between.
ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")
THREADS = 2  # fixed, as the order of a reduction split between threads may depend on it


def machine() -> dict[str, Any]:
    """What floating-point results depend on besides the code."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu == (platform.processor() or platform.machine()):
                cpu = value.strip()
            if key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": cpu,
        "isa": [f for f in ISA if f in flags],
        "torch": str(torch.__version__).split("+")[0],
        "threads": min(THREADS, os.cpu_count() or 1),
    }


def fingerprints(folder: Path) -> dict[str, Any]:
    """Hashes of a sweep's identikit bytes and of its results, bar what varies by run."""
    with np.load(folder / "identikits.npz", allow_pickle=False) as npz:
        images = npz["images"].astype(np.float32).tobytes()
        digits = npz["digits"].astype(np.int64).tobytes()
    results = json.loads((folder / "results.json").read_text())
    for key in UNSTABLE:
        results.pop(key, None)
    results["model"].pop("path", None)
    canonical = json.dumps(results, sort_keys=True).encode()
    return {
        "images": hashlib.sha256(images + digits).hexdigest(),
        "results": hashlib.sha256(canonical).hexdigest(),
        "queries": results["total_queries"],
        "converged": sum(row["converged"] for row in results["summary"].values()),
    }


def run(name: str, folder: Path) -> dict[str, Any]:
    settings = dict(SWEEPS[name])
    strategy = settings.pop("strategy", name)
    config = SweepConfig(runs=2, seed=11, strategy=strategy, **settings)
    before = torch.get_num_threads()
    torch.set_num_threads(machine()["threads"])
    try:
        # No engine measurement: the model as given, on the CPU, in one fixed chunk size.
        classifier = Classifier(
            fixed_model(),
            ModelInfo(sha256="regression-model"),
            engine=EngineOptions(chunk_size=256),
        )
        sweep_to_folder(classifier, config, folder, options=SweepOptions(progress=False))
    finally:
        torch.set_num_threads(before)
    return fingerprints(folder)


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(RECORD.read_text())
    if recorded["machine"] != machine():
        pytest.skip(
            f"recorded on {recorded['machine']}; this is {machine()}: another CPU or torch "
            "rounds differently in the last bits"
        )
    return recorded


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_strategy_computes_what_it_computed(
    name: str, record: dict[str, Any], tmp_path: Path
) -> None:
    if name in UNRECORDED and name not in record["sweeps"]:
        pytest.skip(f"{name} is not yet recorded on {record['machine']['cpu']}")
    assert run(name, tmp_path / name) == record["sweeps"][name]


def test_the_record_covers_every_strategy() -> None:
    recorded = json.loads(RECORD.read_text())["sweeps"]
    covered = {SWEEPS[name].get("strategy", name) for name in recorded}
    assert covered | UNRECORDED == set(STRATEGIES)
    assert set(SWEEPS) >= UNRECORDED  # each is swept, ready to be recorded


if __name__ == "__main__":  # record again: only when a change of results is intended
    with tempfile.TemporaryDirectory() as tmp:
        sweeps = {name: run(name, Path(tmp) / name) for name in sorted(SWEEPS)}
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps({"machine": machine(), "sweeps": sweeps}, indent=1) + "\n")
    print(f"recorded {len(sweeps)} sweeps in {RECORD}", file=sys.stderr)
