"""A sweep run as Ray tasks: local Ray on this machine, or an existing cluster.

The driver (this process) splits the sweep's runs into shards (:mod:`identikit.cluster.shards`),
puts the model file's bytes in Ray's object store once, and submits one task per shard. Each
task loads the model once per worker process, chooses its scoring engine on its own node (the
tuning cache is per machine), searches its runs and hands back their final state. The driver
writes each shard to the sweep's folder as it arrives, atomically, and shows one progress bar
over all of them; when every shard is in, it writes the sweep's results exactly as a sweep on
one machine does (``results.json``, ``identikits.npz``, ``grid.png``, ``sweep-state.npz``), plus
``cluster.json`` (which node ran which shard, and how long it took).

Nothing is lost: a driver stopped (Ctrl-C, SIGTERM, killed) keeps every finished shard, and the
same command skips them; a worker process that dies mid-shard has its shard run again by Ray
(``max_retries``), which gives the same runs, since a run depends on its seed alone; a shard
that keeps failing ends the sweep with one line naming it, keeping the others.

Nothing is trusted either: a resumed sweep's plan and every kept shard are checked, before Ray
starts, as strictly as a sweep's own state and against the sweep's runs; a bad plan is one
line, a bad shard is set aside (moved out of ``shards/``, said in one line) and searched again.
The shards go only once the merged files are written and read back as written. A cluster
address is asked to answer as Ray (:mod:`identikit.cluster.probe`) within
:data:`REACH_SECONDS` before Ray is given it.

Ray: Moritz et al., "Ray: A Distributed Framework for Emerging AI Applications", OSDI 2018.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from identikit.base.atomic import atomic_write_text, remove_leftovers
from identikit.base.data_free import data_allowed
from identikit.base.errors import IdentikitError, first_line
from identikit.base.folder_lock import locked_folder
from identikit.base.safe_files import read_regular
from identikit.classifier.classifier import Classifier
from identikit.cluster.model_source import ModelSource
from identikit.cluster.probe import check_answers
from identikit.cluster.progress import (
    REPORT_SECONDS,
    ProgressBoard,
    ShardProgress,
    Throttled,
    counts,
)
from identikit.cluster.shards import ShardError, ShardFolder, ShardPlan, plan_shards, shard_name
from identikit.cluster.tasks import ShardTask, search_shard
from identikit.strategies import SearchState
from identikit.strategies.base import NO_HOOKS, RunHooks, check_targets, step_cost
from identikit.sweeps.experiment import SweepConfig, sweep_identity, sweep_results
from identikit.sweeps.folder import read_sweep_folder, write_sweep_folder
from identikit.sweeps.sweep import (
    DEFAULT_OPTIONS,
    SweepOptions,
    SweepOutcome,
    check_writable,
    recall_sweep,
)
from identikit.sweeps.sweep_state import (
    STATE_FILE,
    load_state,
    merge_states,
    same_states,
    save_state,
)
from identikit.sweeps.training_data import prior_inputs, training_dataset

CLUSTER_FILE = "cluster.json"
# Share of one GPU a task asks for with a CUDA device: four shards of a small model fit on one
# card together, and keep it busier than one does (a step's forward passes are short).
GPU_SHARE = 0.25
RETRIES = 3
POLL_SECONDS = 0.2  # how often the driver looks for a pause request while shards run
REACH_SECONDS = 10.0  # to wait for a cluster's address to answer


@dataclass(frozen=True, kw_only=True)
class RayCluster:
    """Where and how a sweep runs on Ray.

    ``address``: an existing cluster's (``ray start --head`` prints it); None starts a Ray on
    this machine for the sweep, using ``cpus`` cores (None: all). ``source``: the model file
    the workers load (the API fills it in from a model given as a path). Each task takes
    ``cpus_per_task`` cores and, with a CUDA device, ``gpus_per_task`` of a GPU; a task whose
    worker dies is run again up to ``retries`` times; ``shard_runs`` overrides the shards'
    size (see :func:`~identikit.cluster.shards.plan_shards`).
    """

    address: str | None = None
    cpus: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: float = GPU_SHARE
    retries: int = RETRIES
    shard_runs: int | None = None
    source: ModelSource | None = None

    def __post_init__(self) -> None:
        if self.cpus_per_task < 1:
            raise IdentikitError(f"--cpus-per-task must be at least 1, got {self.cpus_per_task}")
        if not 0 < self.gpus_per_task <= 1:
            raise IdentikitError(f"--gpus-per-task must be in (0, 1], got {self.gpus_per_task}")
        if self.retries < 0:
            raise IdentikitError(f"--retries must be at least 0, got {self.retries}")
        if self.cpus is not None and self.cpus < 1:
            raise IdentikitError(f"--cpus must be at least 1, got {self.cpus}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise IdentikitError("--cluster ray needs Ray: pip install 'identikit[ray]'") from None
    return ray


@contextlib.contextmanager
def connected(cluster: RayCluster) -> Iterator[Any]:
    """Ray, joined to ``cluster.address`` or started on this machine; shut down afterwards
    where this call started it. A Ray the caller already started is used as it is."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    # Ray reports usage to its makers unless told not to: a sweep tells nobody anything.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main = threading.current_thread() is threading.main_thread()
    # ray.init installs its own SIGTERM handler; the caller's (a pause) is put back.
    previous = signal.getsignal(signal.SIGTERM) if main else None
    # Without an address Ray would join whatever cluster `ray start` last started on this
    # machine (even one long dead); "local" starts a Ray of its own. RAY_ADDRESS is Ray's
    # own way to name a cluster, and is honoured.
    address = cluster.address or os.environ.get("RAY_ADDRESS") or "local"
    if address != "local":
        check_reachable(address)
    try:
        ray.init(
            address=address,
            num_cpus=cluster.cpus if address == "local" else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    except ray.exceptions.AuthenticationError:
        # RAY_AUTH_MODE=token here, and Ray found no token before asking anyone.
        raise IdentikitError(no_token_here(address)) from None
    except (ConnectionError, ValueError, RuntimeError) as exc:
        if refused_token(exc):
            raise IdentikitError(token_refused(address)) from None
        where = "this machine" if address == "local" else address
        raise IdentikitError(f"cannot start Ray on {where}: {first_line(exc)}") from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        yield ray
    finally:
        ray.shutdown()


def refused_token(exc: BaseException) -> bool:
    """Whether ``ray.init`` failed because the cluster refused this process's token.

    Ray 2.58 wraps the refusal (gRPC UNAUTHENTICATED, which Ray names ``InvalidAuthToken``) in
    a RuntimeError whose text holds the last attempt's traceback, then in a ConnectionError
    that says only "Failed to connect"; so the chain is read, the causes included.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def token_refused(address: str) -> str:
    """One line for a cluster that asks for a token this machine did not give (see the
    README's "Sweeps on a cluster": Ray's token authentication)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # as Ray reads it
        return (
            f"the Ray cluster at {address} asks for a token (InvalidAuthToken): set "
            "RAY_AUTH_MODE=token here and copy the head's ~/.ray/auth_token to "
            "~/.ray/auth_token on this machine, as on every node"
        )
    return (
        f"the Ray cluster at {address} refused this machine's token (InvalidAuthToken): copy "
        "the head's ~/.ray/auth_token to ~/.ray/auth_token here (RAY_AUTH_TOKEN and "
        "RAY_AUTH_TOKEN_PATH, where set, come first)"
    )


def no_token_here(address: str) -> str:
    """One line for RAY_AUTH_MODE=token on a machine that holds no token."""
    return (
        f"cannot join the Ray cluster at {address}: RAY_AUTH_MODE=token but this machine has "
        "no Ray token: copy the head's ~/.ray/auth_token to ~/.ray/auth_token here (or name "
        "the file with RAY_AUTH_TOKEN_PATH)"
    )


def check_reachable(address: str, wait: float = REACH_SECONDS) -> None:
    """Refuse, in one line and within ``wait`` seconds, a cluster address (``HOST:PORT``)
    that does not answer as Ray: nothing listening, or a listener that says nothing or
    something else (:mod:`identikit.cluster.probe`). Ray itself would wait for it for
    minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address, as Ray writes it
    # With RAY_USE_TLS, Ray's gRPC runs inside TLS, which the probe does not speak: whether
    # anything listens is then all that can be asked without Ray.
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
    check_answers(address, host, int(port), wait, speak=not tls)


def _shard_on_node(source: ModelSource, task: ShardTask, board: Any) -> bytes:
    """The Ray task: :func:`search_shard`, recording the node that ran it and reporting its
    progress to ``board`` (a :class:`ProgressBoard` actor)."""
    ray = _import_ray()
    report = Throttled(lambda counted: board.report.remote(task.index, counted))
    return search_shard(source, task, ray.get_runtime_context().get_node_id(), report)


def workers(ray: Any, cluster: RayCluster, cuda: bool) -> int:
    """How many tasks the cluster runs at once."""
    resources = ray.cluster_resources()
    count = int(resources.get("CPU", 0) // cluster.cpus_per_task)
    if cuda:
        count = min(count, int(resources.get("GPU", 0) / cluster.gpus_per_task))
        if count < 1:
            raise IdentikitError("--device cuda: the Ray cluster has no GPU")
    if count < 1:
        raise IdentikitError(
            f"the Ray cluster has {resources.get('CPU', 0)} CPUs, fewer than --cpus-per-task"
        )
    return count


@dataclass
class _Sweep:
    """A Ray sweep under way: its folder, plan and the shards it holds."""

    classifier: Classifier
    config: SweepConfig
    shards: ShardFolder
    plan: ShardPlan
    earlier: float  # seconds spent on it in earlier calls
    finished: dict[int, tuple[dict[str, Any], SearchState, float]]
    resumed: bool  # it began in an earlier call
    retries: int  # times Ray runs a shard again whose worker died
    began: float = field(default_factory=time.perf_counter)  # this call's start

    def seconds(self) -> float:
        """Seconds spent on the sweep so far, in every call."""
        return self.earlier + time.perf_counter() - self.began

    def save_plan(self) -> None:
        """Record the seconds spent so far (kept by a driver killed the next moment)."""
        self.shards.write_plan(self.plan, self.seconds())


def sweep_on_ray(
    classifier: Classifier,
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    cluster: RayCluster,
    hooks: RunHooks = NO_HOOKS,
    options: SweepOptions = DEFAULT_OPTIONS,
) -> SweepOutcome:
    """Run (or resume, or recall) the sweep ``config`` in folder ``out`` as Ray tasks.

    ``classifier`` is the driver's view of the model (its description, hash and shape; it
    scores nothing here), ``cluster.source`` the file the workers load, which must be the
    same model. ``hooks.should_stop`` pauses the sweep: finished shards are kept and the same
    call resumes it. The outcome is what :func:`~identikit.sweeps.sweep.sweep_to_folder`
    returns for the same sweep.
    """
    source = cluster.source
    if source is None:
        raise IdentikitError("a sweep on a cluster needs the model as a file")
    if source.sha256 != classifier.sha256:
        raise IdentikitError(f"{source.name} is not the model this sweep describes")
    folder = Path(out)
    config = config.for_classes(classifier.num_classes)  # "every class": the model's
    check_targets(classifier, config.targets)
    needs = config.spec.needs()
    config.spec.make().for_shape(classifier.info.input_shape)  # refuses a shape it cannot search
    with locked_folder(folder):
        remove_leftovers(folder)
        check_writable(folder)
        shards = ShardFolder(folder, sweep_identity(classifier, config))
        if not shards.exists():
            recalled = recall_sweep(classifier, config, folder, options)
            if recalled is not None:
                return recalled
        # Before Ray starts and any shard is searched: the plan and every finished shard,
        # checked (a bad shard is set aside, to be searched again).
        resumed = _resume(classifier, config, shards, cluster) if shards.exists() else None
        if resumed is not None and len(resumed.finished) == resumed.plan.shards:
            return _finish(resumed, folder, options)  # every shard is in: no Ray needed
        # On the driver, before any task: what the priors learn from (read once, here).
        priors = prior_inputs(needs, training_dataset(classifier.info))
        with connected(cluster) as ray:
            sweep = resumed or _begin(ray, classifier, config, shards, cluster)
            task = ShardTask(config, shards.identity, 0, (), priors, data_free=not data_allowed())
            if not _run(ray, sweep, cluster, task, hooks, options):
                return SweepOutcome(None, resumed=sweep.resumed, already_done=False)
        return _finish(sweep, folder, options)


def _begin(
    ray: Any, classifier: Classifier, config: SweepConfig, shards: ShardFolder, cluster: RayCluster
) -> _Sweep:
    """A new sweep: its plan, made for this cluster and recorded before any shard runs."""
    cost = step_cost(config.spec.make(), classifier)
    cuda = classifier.device.type == "cuda"
    count = workers(ray, cluster, cuda)
    plan = plan_shards(len(config.layout()), count, cost, shard_runs=cluster.shard_runs)
    shards.write_plan(plan, 0.0)
    return _Sweep(classifier, config, shards, plan, 0.0, {}, False, cluster.retries)


def _resume(
    classifier: Classifier, config: SweepConfig, shards: ShardFolder, cluster: RayCluster
) -> _Sweep:
    """A sweep begun in an earlier call: the plan it recorded (a damaged one is refused in
    one line) and the shards it finished. A shard file that fails its checks is set aside,
    said in one line, and its runs are searched again: nothing in it is trusted, and the
    other shards are kept."""
    plan, earlier = shards.read_plan()
    shape = classifier.info.input_shape
    finished = {}
    for index in range(plan.shards):
        try:
            shard = shards.read_shard(plan, index, shape)
        except ShardError as exc:
            _set_aside(shards, index, exc)
            continue
        if shard is not None:
            finished[index] = shard
    return _Sweep(classifier, config, shards, plan, earlier, finished, True, cluster.retries)


def _set_aside(shards: ShardFolder, index: int, problem: ShardError) -> Path:
    """Set a refused shard aside, saying so on stderr in one line, and return its new path."""
    aside = shards.set_aside(index)
    reason = str(problem).removeprefix(f"{shards.path / shard_name(index)}: ")
    print(
        f"identikit: {shards.path / shard_name(index)} set aside as {aside} ({reason}); "
        "its runs are searched again",
        file=sys.stderr,
    )
    return aside


def _run(
    ray: Any,
    sweep: _Sweep,
    cluster: RayCluster,
    task: ShardTask,
    hooks: RunHooks,
    options: SweepOptions,
) -> bool:
    """Submit every unfinished shard and keep each as it arrives; False where paused."""
    remote = ray.remote(_shard_on_node).options(
        num_cpus=cluster.cpus_per_task,
        num_gpus=cluster.gpus_per_task if sweep.classifier.device.type == "cuda" else 0,
        max_retries=cluster.retries,
        retry_exceptions=False,  # an error of the search itself would come again
    )
    progress = ShardProgress(sweep.plan, enabled=options.progress)
    for index, (_, state, _) in sweep.finished.items():
        progress.shard_in(index, state)
    board = _Board(ray, progress)
    source = ray.put(cluster.source)
    pending = {
        remote.remote(
            source, replace(task, index=k, rows=tuple(sweep.plan.rows(k))), board.actor
        ): k
        for k in range(sweep.plan.shards)
        if k not in sweep.finished
    }
    try:
        while pending:
            if hooks.stop_requested():
                return False
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            failures = [_keep(ray, sweep, ref, pending.pop(ref), progress) for ref in done]
            failed = next((f for f in failures if f is not None), None)
            if failed is not None and hooks.stop_requested():
                return False  # Ctrl-C in a terminal reaches the workers too: a pause, not a failure
            if failed is not None:
                _keep_what_finished(ray, sweep, pending, progress)
                raise failed
            board.poll()
        return True
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        progress.close()
        sweep.save_plan()


class _Board:
    """The cluster's :class:`ProgressBoard`, read about once a second without waiting for it
    (the driver must stay free to keep shards and hear a pause)."""

    def __init__(self, ray: Any, progress: ShardProgress) -> None:
        self.ray = ray
        self.progress = progress
        self.actor = ray.remote(num_cpus=0)(ProgressBoard).remote()
        self.asked: Any = None
        self.last = time.monotonic()

    def poll(self) -> None:
        if self.asked is not None:
            ready, _ = self.ray.wait([self.asked], timeout=0)
            if not ready:
                return
            with contextlib.suppress(self.ray.exceptions.RayError):  # progress only
                self.progress.live(self.ray.get(self.asked))
            self.asked = None
        if time.monotonic() - self.last >= REPORT_SECONDS:
            self.last = time.monotonic()
            self.asked = self.actor.snapshot.remote()


def _keep(
    ray: Any, sweep: _Sweep, ref: Any, index: int, progress: ShardProgress
) -> IdentikitError | None:
    """Write a finished shard to the folder; the error that ends the sweep where it failed."""
    try:
        data = ray.get(ref)
    except ray.exceptions.RayError as exc:
        # An error of the search itself is not tried again; a worker's death is, by Ray.
        searched = isinstance(exc, ray.exceptions.RayTaskError)
        cause = first_line(getattr(exc, "cause", None) or exc).rstrip(".")
        tries = "" if searched else f" after {sweep.retries + 1} tries"
        return IdentikitError(
            f"{_describe(sweep, index)} failed{tries}: {cause}; finished shards kept in "
            f"{sweep.shards.path}: {len(sweep.finished)} of {sweep.plan.shards}, and the same "
            "command resumes"
        )
    sweep.shards.write_shard(index, data)
    try:
        shard = sweep.shards.read_shard(sweep.plan, index, sweep.classifier.info.input_shape)
    except ShardError as exc:  # what a worker handed back fails the checks of a kept shard
        aside = sweep.shards.set_aside(index)
        reason = str(exc).removeprefix(f"{sweep.shards.path / shard_name(index)}: ")
        return IdentikitError(
            f"{_describe(sweep, index)} came back damaged ({reason}) and is set aside as "
            f"{aside}; finished shards kept in {sweep.shards.path}: {len(sweep.finished)} of "
            f"{sweep.plan.shards}, and the same command searches the rest"
        )
    if shard is None:  # pragma: no cover - it was just written
        raise IdentikitError(f"shard {index} vanished from {sweep.shards.path}")
    sweep.finished[index] = shard
    sweep.save_plan()
    progress.shard_in(index, shard[1])
    return None


def _describe(sweep: _Sweep, index: int) -> str:
    """``shard 2 of 8 (digit 1 run 0, digit 5 run 1)``, or its first runs and how many."""
    layout = sweep.config.layout()
    rows = sweep.plan.rows(index)
    runs = [f"digit {layout[r][0]} run {layout[r][1]}" for r in rows[:3]]
    more = f", ... {len(rows)} runs" if len(rows) > 3 else ""
    return f"shard {index} of {sweep.plan.shards} ({', '.join(runs)}{more})"


def _keep_what_finished(
    ray: Any, sweep: _Sweep, pending: dict[Any, int], progress: ShardProgress
) -> None:
    """After a failure: keep the shards that have finished meanwhile (the rest are cancelled)."""
    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
    for ref in done:
        _keep(ray, sweep, ref, pending.pop(ref), progress)


def _finish(sweep: _Sweep, folder: Path, options: SweepOptions) -> SweepOutcome:
    """Every shard is in: the sweep's results, written as a sweep on one machine writes them;
    then the shards go (the sweep's state holds them all)."""
    order = range(sweep.plan.shards)
    records = [sweep.finished[k][0] for k in order]
    state = merge_states(
        [(sweep.plan.rows(k), sweep.finished[k][1]) for k in order], sweep.plan.runs
    )
    engines: list[dict[str, Any]] = []
    for record in records:
        if record["engine"] not in engines:
            engines.append(record["engine"])
    seconds = sweep.seconds()
    results = sweep_results(
        sweep.classifier,
        sweep.config,
        state,
        seconds=seconds,
        model_path=options.model_path,
        engines=engines,
    )
    results["scoring"] = records[0]["scoring"]  # what scored it: the workers' choice
    identity = {**sweep.shards.identity, "engines": engines}
    placement = _placement(sweep, records)
    save_state(folder, identity, state, seconds=seconds)
    write_sweep_folder(folder, results, state)
    atomic_write_text(folder / CLUSTER_FILE, json.dumps(placement, indent=1))
    # The shards are the only other copy of every run: they go only once the files that
    # replace them read back as what was written.
    problem = _written_wrong(sweep, folder, identity, state, placement)
    if problem is not None:
        raise IdentikitError(
            f"{folder}: the merged sweep does not read back as written ({problem}); the "
            f"shards are kept in {sweep.shards.path}, and the same command merges them again"
        )
    sweep.shards.remove()
    return SweepOutcome(results, resumed=sweep.resumed, already_done=False)


def _written_wrong(
    sweep: _Sweep,
    folder: Path,
    identity: dict[str, Any],
    state: SearchState,
    placement: dict[str, Any],
) -> str | None:
    """What of the sweep's files in ``folder`` (its state, identikits, results and
    ``cluster.json``) does not read back, checked, as ``state`` and ``placement``; None
    where all do."""
    shape = sweep.classifier.info.input_shape
    try:
        saved = load_state(folder, torch.device("cpu"), shape)
        written = read_sweep_folder(folder, shape=shape)
        cluster = json.loads(read_regular(folder / CLUSTER_FILE))
    except (IdentikitError, ValueError) as exc:
        return first_line(exc)
    if saved is None or saved[0] != identity or not same_states(saved[1], state):
        return f"{STATE_FILE} holds another state"
    images = state.images.detach().cpu().numpy()
    if not np.array_equal(written.pixels, images) or written.digits.tolist() != [
        int(t) for t in state.targets.tolist()
    ]:
        return "the identikits are not the merged shards' images"
    if cluster != placement:
        return f"{CLUSTER_FILE} is not what was written"
    return None


def _placement(sweep: _Sweep, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Where each shard ran and how long it took: ``cluster.json``."""
    shards = []
    for k, record in enumerate(records):
        state = sweep.finished[k][1]
        shards.append(
            {
                "shard": k,
                "runs": len(state.seeds),
                "converged": counts(state)[1],
                "node": record["node"],
                "host": record["host"],
                "engine": record["engine"],
                "seconds": round(sweep.finished[k][2], 3),
            }
        )
    return {
        "format": "identikit-cluster",
        "shards": sweep.plan.shards,
        "nodes": sorted({s["node"] for s in shards}),
        "placement": shards,
    }
