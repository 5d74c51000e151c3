"""Sweeps as Ray tasks on a real Ray: the local sweep's results, nothing lost when the driver
or a worker dies, a shard that keeps failing named, and two Ray nodes sharing one sweep.

Every test here runs inside a private network namespace (``make test`` runs them under
``unshare --net`` with only the loopback up), where Ray binds and talks on 127.0.0.1 alone;
elsewhere they skip, saying so. The sweeps score with ONNX Runtime, whose scores of an image do
not depend on its batch or the thread count, so a run's results are its seed's alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from identikit.base.errors import IdentikitError
from identikit.cluster.model_source import LoadOptions, ModelSource
from identikit.cluster.ray_sweep import (
    RayCluster,
    _finish,
    _resume,
    check_reachable,
    connected,
    sweep_on_ray,
)
from identikit.cluster.shards import PLAN_FILE, ShardFolder, ShardPlan, shard_name
from identikit.cluster.tasks import ShardTask, search_shard
from identikit.strategies import RunHooks
from identikit.sweeps.experiment import SweepConfig, sweep_identity
from identikit.sweeps.folder import SHARDS_FOLDER, read_sweep_folder
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from tests.helpers import (
    TIMING,
    needs_cuda,
    private_network,
    rewrite_npz,
    run_cli,
    stop_after,
)


def needs_ray(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that starts a real Ray: run inside a private network namespace only."""
    for mark in (
        pytest.mark.ray,
        pytest.mark.skipif(
            importlib.util.find_spec("ray") is None,
            reason="Ray is not installed: pip install 'identikit[ray]'",
        ),
        pytest.mark.skipif(
            not private_network(),
            reason="Ray tests run inside a private network namespace: make test runs them there",
        ),
    ):
        test = mark(test)
    return test


LONG = 200_000  # queries per run: about 2 s for a shard of one run
SHORT = 20_000


def sweep(model: Path, out: Path, queries: int, *extra: str) -> list[str]:
    """A search of 4 classes x 2 runs that ends on its budget (the target is out of reach)."""
    return [
        "search",
        "--model",
        str(model),
        "--out",
        str(out),
        "--digits",
        "0-3",
        "--runs",
        "2",
        "--candidates",
        "100",
        "--target",
        "0.999999",
        "--patience",
        "100000000",
        "--max-queries",
        str(queries),
        "--seed",
        "5",
        "--backend",
        "onnx",
        "--chunk-size",
        "64",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def on_ray(*extra: str) -> tuple[str, ...]:
    return ("--cluster", "ray", *extra)


def assert_same_sweep(a: Path, b: Path) -> None:
    """Identical identikits and results, bar timings and the scoring choice (which records
    each process's thread count)."""
    with np.load(a / "identikits.npz") as x, np.load(b / "identikits.npz") as y:
        assert np.array_equal(x["images"], y["images"])
        assert np.array_equal(x["digits"], y["digits"])
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (a, b))
    for record in (ra, rb):
        for key in (*TIMING, "scoring"):
            record.pop(key)
    assert ra == rb
    assert not (b / SHARDS_FOLDER).exists()  # the sweep's state holds every shard now


def placement(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "cluster.json").read_text()))


@pytest.fixture(scope="module")
def local(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The sweeps on this machine, without Ray, by budget."""
    folders = {}
    for queries in (SHORT, LONG):
        folders[queries] = tmp_path_factory.mktemp("local") / "sweep"
        proc = run_cli(*sweep(model_file, folders[queries], queries))
        assert proc.returncode == 0, proc.stderr
    return folders


def start(args: list[str]) -> subprocess.Popen[str]:
    """The command line in a process group of its own (so that it can be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "identikit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def finished_shards(out: Path) -> list[Path]:
    return sorted((out / SHARDS_FOLDER).glob("shard-*.npz"))


def shard_workers() -> list[int]:
    """The processes running a shard now (Ray names a worker's process after its task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                b"ray::_shard_on_node"
            ):
                pids.append(int(entry.name))
        except OSError:
            continue  # it ended meanwhile
    return pids


@needs_ray
def test_a_ray_sweep_gives_the_local_sweeps_results(
    model_file: Path, tmp_path: Path, local: dict[int, Path]
) -> None:
    out = tmp_path / "ray"
    proc = run_cli(*sweep(model_file, out, SHORT, *on_ray()))
    assert proc.returncode == 0, proc.stderr
    assert_same_sweep(local[SHORT], out)
    cluster = placement(out)
    assert cluster["shards"] == 2  # 8 runs of 100 candidates on 2 workers: 2 shards
    assert sum(p["runs"] for p in cluster["placement"]) == 8
    # The folder is a finished sweep like any: searched again here, it is recalled as it is.
    again = run_cli(*sweep(model_file, out, SHORT))
    assert again.returncode == 0 and "nothing to do" in again.stderr


@needs_ray
def test_an_interrupted_sweep_resumes_without_searching_finished_shards_again(
    model_file: Path, tmp_path: Path, local: dict[int, Path]
) -> None:
    out = tmp_path / "ray"
    args = sweep(model_file, out, LONG, *on_ray("--shard-runs", "1"))
    driver = start(args)
    wait_for(lambda: len(finished_shards(out)) >= 2, "two shards")
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: to the driver and the Ray it started
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "paused" in err and "--cluster ray" in err
    kept = {p.name: p.read_bytes() for p in finished_shards(out)}
    assert 2 <= len(kept) < 8 and (out / SHARDS_FOLDER / PLAN_FILE).exists()
    first = {placement_of(out / SHARDS_FOLDER / name) for name in kept}

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "resumed" in proc.stderr
    assert_same_sweep(local[LONG], out)
    nodes = {p["shard"]: p["node"] for p in placement(out)["placement"]}
    # The kept shards were run by the first call's Ray node, the others by the second's.
    resumed_nodes = set(nodes.values()) - first
    assert len(first) == 1 and len(resumed_nodes) == 1
    assert sum(node in first for node in nodes.values()) == len(kept)


def placement_of(shard: Path) -> str:
    """The node recorded in a shard file."""
    with np.load(shard, allow_pickle=False) as arrays:
        return str(json.loads(str(arrays["identity"]))["node"])


@needs_ray
def test_a_killed_driver_keeps_its_finished_shards(
    model_file: Path, tmp_path: Path, local: dict[int, Path]
) -> None:
    out = tmp_path / "ray"
    args = sweep(model_file, out, LONG, *on_ray("--shard-runs", "1"))
    driver = start(args)
    wait_for(lambda: len(finished_shards(out)) >= 1, "a shard")
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
    driver.communicate(timeout=60)
    kept = len(finished_shards(out))
    assert kept >= 1

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert_same_sweep(local[LONG], out)
    assert len(placement(out)["nodes"]) == 2  # the killed call's node ran the kept shards


@needs_ray
def test_a_worker_killed_mid_shard_is_retried_with_the_same_results(
    model_file: Path, tmp_path: Path, local: dict[int, Path]
) -> None:
    out = tmp_path / "ray"
    driver = start(sweep(model_file, out, LONG, *on_ray("--shard-runs", "1")))
    wait_for(lambda: bool(shard_workers()), "a worker running a shard")
    time.sleep(1.0)  # mid-shard: a shard of one run takes about 2 s
    victims = shard_workers()
    os.kill(victims[0], signal.SIGKILL)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert_same_sweep(local[LONG], out)
    assert len(placement(out)["placement"]) == 8


@needs_ray
def test_a_shard_that_keeps_failing_ends_the_sweep_naming_it(
    model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    driver = start(sweep(model_file, out, LONG, *on_ray("--shard-runs", "1", "--retries", "1")))
    wait_for(lambda: len(finished_shards(out)) >= 1, "a shard")
    kept = finished_shards(out)
    # From now on every worker that takes up a shard dies, however often Ray runs it again.
    while driver.poll() is None:
        for pid in shard_workers():
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    _, err = driver.communicate()
    assert driver.returncode == 2, err  # a user error: one line, exit 2
    lines = [line for line in err.splitlines() if line.startswith("identikit:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"shard \d of 8 \(digit \d run \d\) failed after 2 tries: ", lines[0])
    assert f"finished shards kept in {out / SHARDS_FOLDER}: " in lines[0]
    assert all(path.exists() for path in kept)  # what finished is kept
    assert not (out / "results.json").exists()


def ray_command() -> str:
    return str(Path(sys.executable).parent / "ray")


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[str]:
    """A Ray head and a second Ray node, one core each, on this machine; stopped afterwards."""
    address = "127.0.0.1:6391"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    nodes: list[subprocess.Popen[bytes]] = []

    def node(*args: str, log: str) -> None:
        with (tmp_path / log).open("wb") as sink:
            nodes.append(
                subprocess.Popen(
                    [ray_command(), "start", *common, *args],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )

    try:
        node("--head", "--port", address.split(":")[1], "--include-dashboard", "false", log="h")
        wait_for(lambda: cluster_cpus(address) >= 1, "the Ray head")
        node("--address", address, log="n")
        wait_for(lambda: cluster_cpus(address) >= 2, "the second Ray node")
        yield address
    finally:
        for process in nodes:
            with_group(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


def with_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def cluster_cpus(address: str) -> float:
    """The CPUs the cluster at ``address`` has, as ``ray status`` reports them (0: none yet)."""
    proc = subprocess.run(
        [ray_command(), "status", "--address", address],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "CPU" and "/" in parts[0]:
            return float(parts[0].split("/")[1])
    return 0.0


@needs_ray
def test_two_ray_nodes_share_a_sweep(
    model_file: Path, tmp_path: Path, local: dict[int, Path], two_nodes: str
) -> None:
    out = tmp_path / "ray"
    args = sweep(model_file, out, SHORT, *on_ray("--address", two_nodes, "--shard-runs", "1"))
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert_same_sweep(local[SHORT], out)
    cluster = placement(out)
    assert len(cluster["nodes"]) == 2  # each node ran shards
    assert {p["host"] for p in cluster["placement"]} == {os.uname().nodename}


@needs_ray
@needs_cuda
def test_shards_share_a_gpu(model_file: Path, tmp_path: Path) -> None:
    """With --device cuda, each task asks Ray for a quarter of a GPU: four shards share it."""
    args = [*sweep(model_file, tmp_path / "ray", SHORT), *on_ray("--shard-runs", "1")]
    gpu = [a if a != "cpu" else "cuda" for a in args]
    gpu[gpu.index("onnx")] = "eager"
    here = [a if a != "cpu" else "cuda" for a in sweep(model_file, tmp_path / "local", SHORT)]
    here[here.index("onnx")] = "eager"
    for command in (gpu, here):
        proc = run_cli(*command)
        assert proc.returncode == 0, proc.stderr
    cluster = placement(tmp_path / "ray")
    assert cluster["shards"] == 8
    assert all(p["engine"]["device"].startswith("cuda") for p in cluster["placement"])


# --- Refused before any Ray starts ------------------------------------------------------------


def test_an_address_where_nothing_listens_is_one_line() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(IdentikitError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable("auto")  # a form Ray resolves itself is left to it


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"cpus_per_task": 0}, "--cpus-per-task"),
        ({"gpus_per_task": 1.5}, "--gpus-per-task"),
        ({"retries": -1}, "--retries"),
        ({"cpus": 0}, "--cpus"),
    ],
)
def test_cluster_settings_are_checked(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(IdentikitError, match=message):
        RayCluster(**setting)


def test_a_sweep_begun_on_one_machine_is_resumed_there_only(
    model_file: Path, tmp_path: Path
) -> None:
    source = ModelSource.read(model_file, LoadOptions(device="cpu"))
    classifier = source.load()
    config = SweepConfig(digits=(0, 1), runs=2, max_queries=5000)
    hooks = RunHooks(should_stop=stop_after(1))
    quiet = SweepOptions(progress=False)
    paused = sweep_to_folder(classifier, config, tmp_path, hooks=hooks, options=quiet)
    assert paused.results is None
    with pytest.raises(IdentikitError, match="begun on this machine: resume it without"):
        sweep_on_ray(classifier, config, tmp_path, cluster=RayCluster(source=source))
    # And the other way round: a folder holding a cluster's shards is not searched here.
    other = tmp_path / "cluster"
    ShardFolder(other, sweep_identity(classifier, config)).write_plan(ShardPlan(2, 4), 0.0)
    with pytest.raises(IdentikitError, match="begun on a cluster: resume it with --cluster ray"):
        sweep_to_folder(classifier, config, other, options=quiet)


def without_seconds(record: Any) -> Any:
    """A JSON record without its timings."""
    if isinstance(record, dict):
        return {k: without_seconds(v) for k, v in record.items() if k not in TIMING}
    if isinstance(record, list):
        return [without_seconds(v) for v in record]
    return record


@needs_ray
def test_compare_and_reconstruct_on_ray_give_the_local_results(
    model_file: Path, tmp_path: Path
) -> None:
    common = ["--model", str(model_file), "--digits", "0,1", "--runs", "2"]
    common += ["--backend", "onnx", "--chunk-size", "64", "--device", "cpu", "--no-progress"]
    compare = ["compare", "--strategies", "random-masks,square", "--max-queries", "3000"]
    # A reconstruction reads the model alone, on the workers too: the data folder they
    # inherit is empty, and gets no dataset.
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"IDENTIKIT_DATA": str(empty), "HOME": str(tmp_path / "home")}
    reconstruct = ["reconstruct", "--black-box", "--steps", "3", "--option", "samples=2"]
    for where, extra in (("local", ()), ("ray", on_ray())):
        for name, command in (("compare", compare), ("reconstruct", reconstruct)):
            out = tmp_path / f"{name}-{where}"
            proc = run_cli(*command, *common, "--out", str(out), *extra, env=env)
            assert proc.returncode == 0, proc.stderr
    for strategy in ("random-masks", "square"):
        assert_same_sweep(
            tmp_path / "compare-local" / strategy, tmp_path / "compare-ray" / strategy
        )
    local, on_ray_ = (
        json.loads((tmp_path / f"compare-{where}" / "compare.json").read_text())
        for where in ("local", "ray")
    )
    assert without_seconds(local) == without_seconds(on_ray_)
    assert_same_sweep(tmp_path / "reconstruct-local", tmp_path / "reconstruct-ray")
    results = json.loads((tmp_path / "reconstruct-ray" / "results.json").read_text())
    assert results["uses_data"] is False
    assert {p.name for p in empty.iterdir()} <= {"backends"}  # the engines' cache: no dataset


def test_without_ray_a_cluster_sweep_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is missing
    refused = pytest.raises(IdentikitError, match=r"needs Ray: pip install 'identikit\[ray\]'")
    with refused, connected(RayCluster()):
        pass


# --- A hostile address: one line, within the wait ---------------------------------------------


@contextlib.contextmanager
def listener(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that hands each connection to ``answer``; its address."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the server closed at the end of the test
            while True:
                connection, _ = server.accept()
                held.append(connection)
                answer(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for connection in held:
            connection.close()


# An empty SETTINGS frame, then GOAWAY (RFC 9113 §6.5, §6.8): HTTP/2 that refuses to go on.
REFUSAL = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]) + bytes([0, 0, 8, 7, 0, 0, 0, 0, 0]) + bytes(8)
ANSWERS: dict[str, tuple[Callable[[socket.socket], None], str]] = {
    "silent": (lambda c: None, "it gave no answer in 1 s"),
    "garbage": (lambda c: c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello\n"), "does not speak HTTP/2"),
    # Closed before or after our request came: either way no answer.
    "hangs up": (lambda c: c.close(), "closed the connection without an answer|reset|pipe"),
    "goaway": (lambda c: c.sendall(REFUSAL), "GOAWAY"),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_an_address_that_does_not_answer_as_ray_is_one_line(case: str) -> None:
    answer, reason = ANSWERS[case]
    with listener(answer) as address, pytest.raises(IdentikitError) as error:
        check_reachable(address, wait=1.0)  # the sweep waits REACH_SECONDS
    message = str(error.value)
    assert message.startswith(f"no Ray cluster answers at {address} (")
    assert re.search(reason, message) and "\n" not in message


# --- Tampered cluster files: checked before Ray starts; the merge keeps the shards ------------

TAMPER_CONFIG = SweepConfig(digits=(0, 1), runs=2, max_queries=300)


def begun_on_a_cluster(model_file: Path, out: Path) -> tuple[ModelSource, ShardFolder]:
    """A cluster sweep of 4 runs in 2 shards, both finished (searched here, as a worker
    would), as a driver stopped before merging leaves it."""
    source = ModelSource.read(model_file, LoadOptions(device="cpu"))
    shards = ShardFolder(out, sweep_identity(source.load(), TAMPER_CONFIG))
    plan = ShardPlan(2, 4)
    shards.write_plan(plan, 1.0)
    for k in range(plan.shards):
        task = ShardTask(TAMPER_CONFIG, shards.identity, k, tuple(plan.rows(k)))
        shards.write_shard(k, search_shard(source, task))
    return source, shards


def test_a_tampered_shard_is_set_aside_and_the_rest_kept(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, shards = begun_on_a_cluster(model_file, tmp_path)
    bad = shards.path / shard_name(1)
    rewrite_npz(bad, lambda a: {**a, "images": a["images"] * np.nan})
    edited = bad.read_bytes()
    sweep = _resume(source.load(), TAMPER_CONFIG, shards, RayCluster(source=source))
    assert set(sweep.finished) == {0}  # shard 1 is searched again, shard 0 kept
    aside = tmp_path / "shard-00001.bad-1.npz"
    assert aside.read_bytes() == edited and not bad.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad} set aside as {aside}" in err
    assert "an image is not finite" in err and "searched again" in err


@pytest.mark.parametrize(
    "change", [{"runs": 2}, {"runs": 32}, {"seconds": float("nan")}, {"shards": 10**8}]
)
def test_a_tampered_plan_is_refused_before_ray_starts(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    source, shards = begun_on_a_cluster(model_file, tmp_path)
    plan = shards.path / PLAN_FILE
    plan.write_text(json.dumps({**json.loads(plan.read_text()), **change}))
    kept = {p.name: p.read_bytes() for p in shards.path.iterdir()}
    monkeypatch.setitem(sys.modules, "ray", None)  # whatever needs Ray would say so instead
    with pytest.raises(IdentikitError, match=f"{plan} is damaged") as error:
        sweep_on_ray(source.load(), TAMPER_CONFIG, tmp_path, cluster=RayCluster(source=source))
    assert "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in shards.path.iterdir()} == kept


def test_the_merge_keeps_the_shards_until_the_sweep_is_written(
    model_file: Path, tmp_path: Path
) -> None:
    source, shards = begun_on_a_cluster(model_file, tmp_path)
    classifier = source.load()
    quiet = SweepOptions(progress=False)
    (tmp_path / "grid.png").mkdir()  # the last file of the sweep cannot be written
    with pytest.raises(IdentikitError):
        _finish(_resume(classifier, TAMPER_CONFIG, shards, RayCluster()), tmp_path, quiet)
    assert sorted(p.name for p in shards.path.iterdir()) == [
        PLAN_FILE,
        shard_name(0),
        shard_name(1),
    ]
    (tmp_path / "grid.png").rmdir()
    done = _finish(_resume(classifier, TAMPER_CONFIG, shards, RayCluster()), tmp_path, quiet)
    assert done.results is not None and len(done.results["runs"]) == 4
    assert not shards.path.exists()  # written and read back: the sweep's state holds them
    written = read_sweep_folder(tmp_path)
    assert np.isfinite(written.images).all() and written.digits.tolist() == [0, 0, 1, 1]


@needs_ray
def test_a_ray_sweep_resumed_over_a_tampered_shard_searches_it_again(
    model_file: Path, tmp_path: Path
) -> None:
    source, shards = begun_on_a_cluster(model_file, tmp_path / "ray")
    rewrite_npz(shards.path / shard_name(0), lambda a: {**a, "scores": a["scores"] * 0 - 5})
    cluster = RayCluster(source=source, cpus=2)
    quiet = SweepOptions(progress=False)
    done = sweep_on_ray(
        source.load(), TAMPER_CONFIG, tmp_path / "ray", cluster=cluster, options=quiet
    )
    assert done.results is not None and not shards.path.exists()
    assert (tmp_path / "ray" / "shard-00000.bad-1.npz").is_file()
    # The runs are the local sweep's: the tampered scores were not recorded.
    local = sweep_to_folder(source.load(), TAMPER_CONFIG, tmp_path / "local", options=quiet)
    assert local.results is not None
    assert [r["confidence"] for r in done.results["runs"]] == [
        r["confidence"] for r in local.results["runs"]
    ]


def test_a_sweep_whose_shards_are_all_in_is_merged_without_ray(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, shards = begun_on_a_cluster(model_file, tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # a Ray started would fail the test
    done = sweep_on_ray(
        source.load(),
        TAMPER_CONFIG,
        tmp_path,
        cluster=RayCluster(source=source),
        options=SweepOptions(progress=False),
    )
    assert done.results is not None and done.resumed and not shards.path.exists()
    assert placement(tmp_path)["shards"] == 2


# --- The README's recipe, as written ------------------------------------------------------------

README = Path(__file__).parent.parent / "README.md"
# Where the recipe's placeholders point here: the head is this machine (127.0.0.1).
HEAD = "127.0.0.1"


def readme_blocks(section: str) -> list[list[str]]:
    """The commands of each code block in the README's ``section`` (its ``## `` title), one
    string each, their comments left off."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = text.split("```")[1::2]  # what lies between the fences
    return [
        [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
        for block in blocks
    ]


def as_here(command: str, model: Path, out: Path, extra: list[str]) -> str:
    """A README command for this machine: its placeholders filled in, ``ray`` and
    ``identikit`` this environment's, and ``extra`` options after a sweep's own (the last of
    an option given twice counts). Other commands are the shell's, as written."""
    words = shlex.split(command)
    if words[0] not in ("identikit", "ray"):
        return command
    swap = {"cnn.pt": str(model), "DIR": str(out)}
    words = [swap.get(w, w).replace("HEAD:", f"{HEAD}:") for w in words]
    if words[0] == "identikit":
        words = [sys.executable, "-m", "identikit", *words[1:], *extra]
    else:
        words[0] = ray_command()
    return shlex.join(words)


def pid_namespace() -> bool:
    """Whether a process namespace of its own can be made here (``ray stop`` stops every Ray
    process it can see, so the recipe runs where it sees its own alone)."""
    proc = subprocess.run(
        ["unshare", "--pid", "--kill-child", "--mount-proc", "true"],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


RECIPE_SCRIPT = """
set -eu
# However the script ends, the Ray it started stops (and the namespace's end kills the rest).
trap 'RAY_AUTH_MODE=token {ray} stop --force >> stop-force.log 2>&1 || true' EXIT
step() {{ echo "$ $1" >> steps.log; }}
# A command expected to fail: its output in NAME.log and its exit status in NAME.rc.
failing() {{ name=$1; shift; "$@" > "$name.log" 2>&1 || echo $? > "$name.rc"; }}
nodes() {{ {ray} status --address {head}:6379 2>/dev/null | grep -c ' node_' || true; }}

step 'the recipe'
{head_start} > head.log 2>&1
{node_start} > node.log 2>&1
# The second node is up; ray status shows it within a few seconds.
for _ in $(seq 60); do [ "$(nodes)" -ge 2 ] && break; sleep 1; done
{search} > search.log 2>&1
{stop} > stop.log 2>&1

step 'token authentication'
{token_lines}
{head_start} > token-head.log 2>&1
# Without RAY_AUTH_MODE=token, or with another token, identikit is refused (Ray retries for
# 20 s, asked here for 2); with it but no token (a home folder without one), Ray refuses
# before it asks. Side by side.
export RAY_gcs_server_port_wait_time_s=2
failing refused env -u RAY_AUTH_MODE {refused} &
failing wrong-token env RAY_AUTH_TOKEN={wrong_token} {wrong} &
failing no-token env HOME="$PWD/no-token" {no_token} &
wait
{stop} > token-stop.log 2>&1
step 'done'
"""


@needs_ray
def test_the_readmes_two_machine_recipe_runs_as_written(model_file: Path, tmp_path: Path) -> None:
    """The README's cluster commands, as written, on this machine: a head, a second node, a
    sweep on both, ``ray stop``; then its token authentication, and identikit's one line for a
    machine without the token. Its own HOME (Ray keeps the token in ``~/.ray``) and temporary
    folder (``RAY_TMPDIR``, short: Ray's socket paths have a length limit), in a process
    namespace of its own, so that ``ray stop`` stops this Ray alone."""
    if not pid_namespace():
        pytest.skip("the recipe's ray stop stops every Ray it sees: it needs unshare --pid")
    plain, tokens = readme_blocks("Sweeps on a cluster")[:2]
    starts = [c for c in plain if c.startswith("ray start")]
    head_start, node_start = starts
    search = next(c for c in plain if c.startswith("identikit") and "--address" in c)
    assert "ray stop" in plain
    # 8 shards of one short run each: enough for both nodes to take some.
    extra = [*sweep(model_file, tmp_path, 2_000)[5:], "--shard-runs", "1"]
    work = tmp_path / "recipe"
    (work / "home").mkdir(parents=True)
    (work / "no-token").mkdir()
    script = RECIPE_SCRIPT.format(
        ray=shlex.quote(ray_command()),
        head=HEAD,
        head_start=as_here(head_start, model_file, work, extra),
        node_start=as_here(node_start, model_file, work, extra),
        search=as_here(search, model_file, work / "sweep", extra),
        stop=as_here("ray stop", model_file, work, extra),
        token_lines="\n".join(as_here(c, model_file, work, extra) for c in tokens),
        refused=as_here(search, model_file, work / "refused-sweep", extra),
        wrong=as_here(search, model_file, work / "wrong-token-sweep", extra),
        wrong_token="0" * 64,
        no_token=as_here(search, model_file, work / "no-token-sweep", extra),
    )
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
        "HOME": str(work / "home"),
        "RAY_TMPDIR": ray_tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        proc = subprocess.run(
            ["unshare", "--pid", "--kill-child", "--mount-proc", "sh", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(work.glob("*.log")))
    assert proc.returncode == 0 and "$ done" in logs, f"{proc.stderr}\n{logs}"

    # The sweep ran on both nodes, and the real user's ~/.ray was never touched.
    assert len(placement(work / "sweep")["nodes"]) == 2
    assert (work / "home" / ".ray" / "auth_token").stat().st_mode & 0o077 == 0  # chmod 600
    # A machine without RAY_AUTH_MODE=token, with another token, or without one: one line
    # each, naming the fix, exit 2.
    for name, fix in (
        ("refused", "set RAY_AUTH_MODE=token here"),
        ("wrong-token", "refused this machine's token"),
        ("no-token", "no Ray token"),
    ):
        assert (work / f"{name}.rc").read_text().strip() == "2", logs
        err = (work / f"{name}.log").read_text()
        lines = [line for line in err.splitlines() if line.startswith("identikit:")]
        assert len(lines) == 1 and fix in lines[0] and "Traceback" not in err, err
        assert "~/.ray/auth_token" in lines[0]
