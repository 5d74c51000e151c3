"""A sweep on Ray against the same sweep on one machine (issue 18).

The original method (500 random masks per step, to 0.99) on the default `cnn`, 10 digits x 20
runs: on this machine with its own engine and thread count (the local sweep), then as Ray tasks
on a Ray started here with 2 workers of 1 thread each (``identikit search --cluster ray``). Both
read their engine choices from the per-machine cache (warm-up sweeps fill it first), so neither
pays for measuring engines; the Ray sweep pays everything else its engine costs: starting Ray,
starting its worker processes, each worker loading the model, submitting shards and bringing
their results back.

Prints both wall times and their ratio (target: Ray within 1.25x of local), whether the two
found the same identikits, and the cost of a shard: the Ray sweep's time beyond its workers'
searching, per shard. Then, from those measured costs, the time of a 1,000-class sweep on more
nodes (the README's table).

Ray tests and benchmarks run inside a private network namespace (Ray binds 127.0.0.1 only);
this script re-runs itself in one (``unshare --net``) when it is not in one already.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from identikit import api
from identikit.classifier import load_classifier
from identikit.cluster.model_source import LoadOptions, ModelSource
from identikit.cluster.ray_sweep import CLUSTER_FILE, RayCluster, connected
from identikit.engines.options import EngineOptions
from identikit.sweeps.experiment import SweepConfig
from strategies import default_cnn  # type: ignore[import-not-found]

WORKERS = 2


def private_network() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def in_private_network() -> int:
    """Run this script again inside a private network namespace; its exit code."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        print("cluster.py needs unshare and ip (a private network namespace)", file=sys.stderr)
        return 1
    script = str(Path(__file__).resolve())
    command = " ".join(map(_quoted, [sys.executable, script, *sys.argv[1:]]))
    return subprocess.call(["unshare", "--net", "sh", "-c", f"ip link set lo up && {command}"])


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def same_runs(a: api.SearchResult, b: api.SearchResult) -> bool:
    keys = ("digit", "run", "seed", "confidence", "status", "iterations", "queries", "history")
    runs = [[{k: r[k] for k in keys} for r in x.record["runs"]] for x in (a, b)]
    return runs[0] == runs[1] and bool(np.array_equal(a.images, b.images))


def measure(config: SweepConfig, model: Path, out: Path, engine: EngineOptions) -> dict[str, Any]:
    """The local sweep, then the Ray sweep, each timed from the same start (model loaded)."""
    classifier = load_classifier(model, engine=engine)
    began = time.perf_counter()
    local = api.search(classifier, config, out=out / "local")
    local_seconds = time.perf_counter() - began
    cluster = RayCluster(cpus=WORKERS, source=ModelSource.read(model, LoadOptions(engine=engine)))
    began = time.perf_counter()
    with connected(cluster):
        started = time.perf_counter() - began
        on_ray = api.search(classifier, config, out=out / "ray", cluster=cluster)
    ray_seconds = time.perf_counter() - began
    placement = json.loads((out / "ray" / CLUSTER_FILE).read_text())
    return {
        "local": local_seconds,
        "ray": ray_seconds,
        "ray_start": started,
        "placement": placement,
        "same": same_runs(local, on_ray),
        "local_engine": local.record["scoring"],
        "ray_engine": on_ray.record["scoring"],
        "runs": len(local.runs),
    }


def warm_up(model: Path, out: Path, engine: EngineOptions) -> None:
    """Fill the per-machine engine cache for 2 threads (local) and 1 thread (Ray's workers)."""
    small = SweepConfig(runs=1, max_queries=2_000)
    classifier = load_classifier(model, engine=engine)
    api.search(classifier, small, out=out / "warm-local")
    source = ModelSource.read(model, LoadOptions(engine=engine))
    cluster = RayCluster(cpus=WORKERS, source=source)
    api.search(classifier, small, out=out / "warm-ray", cluster=cluster)


def report(m: dict[str, Any]) -> None:
    shards = m["placement"]["placement"]
    searching = sum(s["seconds"] for s in shards)
    busy = searching / WORKERS  # the sweep's time if workers only searched, evenly shared
    # Everything else but starting Ray: worker processes starting, the model loading once per
    # worker, shards submitted and brought back, and the wait for the last shard.
    beyond = m["ray"] - m["ray_start"] - busy
    per_shard = beyond * WORKERS / len(shards)  # each worker ran len(shards) / WORKERS shards
    per_run = searching / m["runs"]
    print(f"local sweep: {m['local']:.1f} s ({_engine(m['local_engine'])})")
    print(
        f"Ray sweep:   {m['ray']:.1f} s ({WORKERS} workers x 1 thread, "
        f"{_engine(m['ray_engine'])}), of which starting Ray {m['ray_start']:.1f} s"
    )
    print(f"Ray / local: {m['ray'] / m['local']:.2f}x (target <= 1.25x)")
    print(f"same identikits and runs as local: {'yes' if m['same'] else 'NO'}")
    print(
        f"{len(shards)} shards; workers searched {searching:.1f} s in all ({per_run:.2f} s per "
        f"run of one worker); beyond starting Ray and {busy:.1f} s of evenly shared "
        f"searching, the sweep took {beyond:.1f} s: {per_shard:.2f} s per shard"
    )
    runs = 10_000
    print(f"\nOn paper: 1,000 classes x 10 runs on nodes like this one ({WORKERS} workers each)")
    print(f"{'nodes':>6} {'workers':>8} {'shards':>7} {'hours':>7}")
    for nodes in (1, 2, 4, 8, 16, 64, 256):
        workers = WORKERS * nodes
        count = min(4 * workers, runs)
        seconds = m["ray_start"] + runs * per_run / workers + count / workers * per_shard
        print(f"{nodes:>6} {workers:>8} {count:>7} {seconds / 3600:>7.2f}")


def _engine(scoring: dict[str, Any]) -> str:
    threads = scoring["threads"]
    return f"{scoring['backend']}, chunks of {scoring['chunk_size']}, {threads} thread(s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="runs per digit (default: 20)")
    parser.add_argument(
        "--backend",
        default="onnx",
        help="engine of both sweeps (default: onnx, whose scores of an image do not depend on "
        "its batch, so both sweeps find the same identikits; auto: each chooses its own)",
    )
    args = parser.parse_args()
    engine = EngineOptions(backend=None if args.backend == "auto" else args.backend)
    if not private_network():
        return in_private_network()
    model = default_cnn()
    config = SweepConfig(runs=args.runs)
    print(
        f"default cnn, the original method, 10 digits x {args.runs} runs, to 0.99, "
        f"backend {args.backend}"
    )
    with tempfile.TemporaryDirectory(prefix="identikit-cluster-") as folder:
        warm_up(model, Path(folder), engine)
        report(measure(config, model, Path(folder), engine))
    return 0


if __name__ == "__main__":
    code = main()
    if code:  # make bench runs every script in one process: only a failure ends it
        sys.exit(code)
