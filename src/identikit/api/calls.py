"""The Python API: one function per command, for notebooks and scripts.

``identikit.search``, ``certainty``, ``compare``, ``judge`` and ``report`` do what the commands
of the same names do, with the same files written where an ``out`` folder is given, and return
typed results (:mod:`identikit.api.results`) instead of printing. The command line is a thin
layer over these functions: it parses arguments into the same typed values, calls them and
prints their results.

A ``model`` may be a :class:`~identikit.classifier.classifier.Classifier` (from
:func:`~identikit.classifier.loading.load_classifier`, which takes the model's conventions and
the engine options), a model file (loaded with the defaults; an identikit checkpoint says its
image shape), or a ``torch.nn.Module`` taking pixels in [0, 1] of the default input shape
(MNIST's) and returning logits; a module of another shape is handed over as a Classifier
whose ``ModelInfo`` gives its ``input_shape``. Searches and their files take any shape.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from identikit.api.results import (
    CertaintyResult,
    ComparisonResult,
    JudgeResult,
    Report,
    Run,
    SearchResult,
)
from identikit.base.arguments import (
    finite_number,
    flag,
    instance_of,
    optional_path,
    path_argument,
    shown,
    text_sequence,
    whole_number,
)
from identikit.base.atomic import atomic_write_bytes
from identikit.base.data_free import data_free
from identikit.base.errors import IdentikitError
from identikit.base.figures import convergence_curves
from identikit.base.folder_lock import locked_folder
from identikit.base.limits import SAMPLES
from identikit.classifier.classifier import Classifier
from identikit.classifier.loading import load_classifier
from identikit.cluster.model_source import ModelSource
from identikit.cluster.ray_sweep import RayCluster, connected, sweep_on_ray
from identikit.engines.scorers import module_digest
from identikit.models.info import ModelInfo
from identikit.reports.page import build_report
from identikit.strategies.base import NO_HOOKS, RunHooks
from identikit.strategies.registry import StrategySpec, is_white_box
from identikit.studies.certainty import certainty_report, dataset_maxima, write_certainty
from identikit.studies.judge import JudgeSetup, judge_all
from identikit.sweeps.compare import (
    Comparison,
    SweepRunner,
    curves,
    on_this_machine,
    run_comparison,
    summarise_strategy,
)
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.reconstruction import STEPS, recipe, reconstruction_config
from identikit.sweeps.result_files import write_comparison
from identikit.sweeps.sweep import SweepOptions, SweepOutcome, sweep_to_folder
from identikit.sweeps.training_data import prior_inputs, training_dataset
from identikit.training.evaluation import Evaluation, check_labelled, evaluate_classifier
from identikit.training.evaluation import evaluate as evaluate_module

ModelLike = Classifier | nn.Module | str | os.PathLike[str]

# A notebook has no terminal for a progress bar; the command line asks for one.
QUIET = SweepOptions(progress=False)


class Stopped(Exception):
    """A search or comparison stopped by its hooks before it finished; its state is saved in
    ``folder`` (when it has one), and the same call resumes it."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__(f"stopped; {folder or 'nothing'} holds the state to resume from")
        self.folder = folder


# What an ``out`` names, in the words of the command line's refusal of ``--out ''``.
OUTPUT = "an output"

# What a ``model`` argument may be, for the message that refuses anything else.
MODEL_KINDS = "a Classifier, a torch.nn.Module or a model file's path"


def classifier_of(model: ModelLike) -> Classifier:
    """A Classifier for whatever a user hands the API (see the module's docstring); anything
    else (None, a number, an empty path) is refused in one line naming the argument."""
    if not isinstance(model, Classifier | nn.Module | str | os.PathLike):
        raise IdentikitError(f"model must be {MODEL_KINDS}, got {shown(model)}")
    if isinstance(model, Classifier):
        return model
    if isinstance(model, nn.Module):
        # No file to hash: the module's structure and weights stand for it, so that a sweep
        # folder refuses to be resumed by another module.
        info = ModelInfo(name=type(model).__name__, sha256=module_digest(model, weights=True))
        return Classifier(model, info)
    return load_classifier(path_argument(model, "model"))


def _recorded(options: SweepOptions, model: ModelLike) -> SweepOptions:
    """``options``, naming the model file in the records when the model was handed as one."""
    if options.model_path is None and isinstance(model, str | os.PathLike):
        return replace(options, model_path=os.fspath(model))
    return options


@dataclass(frozen=True)
class _SweepArguments:
    """The arguments every sweep call (search, reconstruct, compare) takes besides its model
    and config, checked: ``out`` a non-empty path or None, the rest of their types (None for
    ``options`` and ``hooks`` meaning their defaults)."""

    out: Path | None
    options: SweepOptions
    hooks: RunHooks
    cluster: RayCluster | None


def _sweep_arguments(
    out: object, options: object, hooks: object, cluster: object
) -> _SweepArguments:
    """The arguments of a sweep call, checked before the model is loaded or a folder made:
    ``out=""`` would be the current folder, and a wrong type would fail deep inside the sweep
    (an AttributeError) after work was done."""
    return _SweepArguments(
        out=optional_path(out, "out", OUTPUT),
        options=_options(options),
        hooks=NO_HOOKS if hooks is None else instance_of(hooks, RunHooks, "hooks", "a RunHooks"),
        cluster=None
        if cluster is None
        else instance_of(cluster, RayCluster, "cluster", "a RayCluster or None"),
    )


def _options(options: object) -> SweepOptions:
    """``options`` checked (None: :data:`QUIET`), as the command line checks its flags:
    ``save_every`` a finite number > 0 (``--save-every``), the rest of their types."""
    if options is None:
        return QUIET
    checked = instance_of(options, SweepOptions, "options", "a SweepOptions or None")
    if finite_number(checked.save_every, "--save-every") <= 0:
        raise IdentikitError(f"--save-every must be a finite number > 0, got {checked.save_every}")
    flag(checked.progress, "options.progress")
    flag(checked.allow_engine_change, "options.allow_engine_change")
    if checked.model_path is not None:
        instance_of(checked.model_path, str, "options.model_path", "a str or None")
    return checked


def _config(config: object) -> SweepConfig | None:
    """``config`` when it is a SweepConfig or None (the call's default)."""
    if config is None:
        return None
    return instance_of(config, SweepConfig, "config", "a SweepConfig or None")


@contextlib.contextmanager
def _folder(out: Path | None) -> Iterator[Path]:
    """``out``, or a temporary folder removed afterwards when there is none."""
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="identikit-") as temporary:
        yield Path(temporary) / "sweep"


def _read_back(folder: Path, *, keep: bool) -> SearchResult:
    sweep = read_sweep_folder(folder)
    return SearchResult(
        config=sweep.config,
        images=sweep.images,
        runs=tuple(Run.of_record(run) for run in sweep.results["runs"]),
        summary=sweep.results["summary"],
        record=sweep.results,
        folder=folder if keep else None,
    )


def search(
    model: ModelLike,
    config: SweepConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    options: SweepOptions | None = QUIET,
    hooks: RunHooks | None = NO_HOOKS,
    cluster: RayCluster | None = None,
) -> SearchResult:
    """Search for the identikits ``config`` asks for (default: the original method, every
    class, 10 runs), as ``identikit search`` does. A config whose classes are None
    (``SweepConfig(classes=None)``, the default) searches every class of the model.

    With ``out``, the sweep is saved there and resumable (a second call with the same
    arguments resumes or recalls it); without, it runs in a temporary folder. Raises
    :class:`Stopped` when ``hooks`` stop it before it finishes. With ``cluster``, the sweep
    runs as Ray tasks (:mod:`identikit.cluster.ray_sweep`), with the same results; the model
    must then be a file (or ``cluster.source`` name it). ``options=None`` and ``hooks=None``
    take their defaults. Every argument is checked first, as the command's options are: a
    wrong one is an :class:`~identikit.base.errors.IdentikitError` of one line, before any work.
    """
    given = _sweep_arguments(out, options, hooks, cluster)
    config = _config(config) or SweepConfig()
    classifier = classifier_of(model)
    # "Every class" is the model's classes, resolved before the sweep's identity is made;
    # a class the model lacks is refused here, before any folder is touched.
    config = config.for_classes(classifier.num_classes)
    with _folder(given.out) as folder:
        on = _on_cluster(given.cluster, model)
        recorded = _recorded(given.options, model)
        outcome = _sweep(classifier, config, folder, on, given.hooks, recorded)
        if outcome.results is None:
            raise Stopped(folder if given.out is not None else None)
        result = _read_back(folder, keep=given.out is not None)
    return replace(
        result,
        resumed=outcome.resumed,
        already_done=outcome.already_done,
        rebuilt=tuple(outcome.rebuilt),
    )


def _on_cluster(cluster: RayCluster | None, model: ModelLike) -> RayCluster | None:
    """``cluster``, with the model file its workers load where the model was given as one."""
    if cluster is None or cluster.source is not None:
        return cluster
    if not isinstance(model, str | os.PathLike):
        raise IdentikitError("a sweep on a cluster needs the model as a file (or cluster.source)")
    return replace(cluster, source=ModelSource.read(model))


def _sweep(
    classifier: Classifier,
    config: SweepConfig,
    folder: Path,
    cluster: RayCluster | None,
    hooks: RunHooks,
    options: SweepOptions,
) -> SweepOutcome:
    """One sweep into ``folder``: on this machine, or on ``cluster``."""
    if cluster is not None:
        return _runner_on(cluster)(classifier, config, folder, hooks, options)
    # What the priors learn from (the manifold prior's subspace): the training images of the
    # dataset the model was trained on, read only when the strategy's priors ask for them.
    priors = prior_inputs(config.spec.needs(), training_dataset(classifier.info))
    return sweep_to_folder(classifier, config, folder, hooks=hooks, priors=priors, options=options)


def _runner_on(cluster: RayCluster) -> SweepRunner:
    """Each sweep of a comparison run on ``cluster``."""

    def runner(
        classifier: Classifier,
        config: SweepConfig,
        folder: Path,
        hooks: RunHooks,
        options: SweepOptions,
    ) -> SweepOutcome:
        return sweep_on_ray(
            classifier, config, folder, cluster=cluster, hooks=hooks, options=options
        )

    return runner


def reconstruct(
    model: ModelLike,
    config: SweepConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    options: SweepOptions | None = QUIET,
    hooks: RunHooks | None = NO_HOOKS,
    cluster: RayCluster | None = None,
) -> SearchResult:
    """A data-free reconstruction of every class, as ``identikit reconstruct`` makes it
    (default: :func:`~identikit.sweeps.reconstruction.reconstruction_config` of the recipe
    for the model's images: the colour recipe for 3-channel images, pen strokes for others;
    a colour recipe's runs share their batch statistics, so no cluster), run while no
    dataset may be read or fetched (:func:`~identikit.base.data_free.data_free`), so that the
    identikits come from the model alone; ``results.json`` records ``"uses_data": false``.
    Otherwise :func:`search`."""
    config = _config(config)
    if config is None:  # the recipe for the model's images: colour or pen strokes
        classifier = classifier_of(model)
        shape = classifier.info.input_shape
        config = reconstruction_config(StrategySpec(recipe(shape)), shape=shape)
        model = classifier
    if config.strategy not in STEPS or config.spec.needs().data:
        raise IdentikitError(
            f"a reconstruction draws with {' or '.join(STEPS)}, which read no data; "
            f"got {config.strategy!r}"
        )
    if cluster is not None and config.spec.make().batch_runs(1) is not None:
        # A shard holds every S-th run: the batches whose statistics are shared would split.
        raise IdentikitError(
            f"{config.strategy} draws its runs in batches that share their statistics: "
            "run it without --cluster"
        )
    with data_free("the reconstruction"):
        return search(model, config, out=out, options=options, hooks=hooks, cluster=cluster)


def certainty(
    model: ModelLike,
    *,
    samples: int = 10_000,
    seed: int = 0,
    dataset: str = "mnist",
    root: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> CertaintyResult:
    """The largest softmax output on ``samples`` real test images of ``dataset`` and on as many
    random images of each kind, as ``identikit certainty`` measures it; with ``out``,
    ``certainty.json`` and ``certainty.png`` are written there."""
    # Before the model is loaded and the data read: a wrong argument costs nothing.
    samples = whole_number(samples, "--samples", least=1)
    SAMPLES.check(samples, "samples")
    seed = whole_number(seed, "--seed")
    instance_of(dataset, str, "dataset", "a dataset's name such as 'mnist' or 'idx:DIR'")
    root = optional_path(root, "root")
    folder = optional_path(out, "out", OUTPUT)
    classifier = classifier_of(model)
    maxima = dataset_maxima(classifier, dataset, root, samples=samples, seed=seed)
    if folder is not None:
        with locked_folder(folder):
            write_certainty(classifier, maxima, folder)
    return CertaintyResult(classifier.name, maxima, certainty_report(maxima))


def compare(
    model: ModelLike,
    comparison: Comparison,
    *,
    out: str | os.PathLike[str] | None = None,
    options: SweepOptions | None = QUIET,
    hooks: RunHooks | None = NO_HOOKS,
    cluster: RayCluster | None = None,
) -> ComparisonResult:
    """Every strategy of ``comparison`` on the same runs and budget, as ``identikit compare``
    runs them: one resumable sweep per strategy under ``out/<strategy>``, ``compare.json`` and
    ``curves.png`` (a temporary folder without ``out``). Raises :class:`Stopped` when ``hooks``
    stop it. With ``cluster``, every sweep runs as Ray tasks on one Ray session. Every
    argument, and every strategy's sweep, is checked before any work."""
    given = _sweep_arguments(out, options, hooks, cluster)
    comparison = _comparison(comparison)
    classifier = classifier_of(model)
    # digits None: every class of the model, resolved (and checked) before any sweep.
    first = comparison.config(comparison.strategies[0]).for_classes(classifier.num_classes)
    comparison = replace(comparison, digits=first.targets)
    recorded = _recorded(given.options, model)
    on = _on_cluster(given.cluster, model)
    runner = on_this_machine if on is None else _runner_on(on)
    session = contextlib.nullcontext() if on is None else connected(on)
    with _folder(given.out) as folder, locked_folder(folder), session:
        by_strategy = run_comparison(
            classifier, comparison, folder, options=recorded, hooks=given.hooks, runner=runner
        )
        if by_strategy is None:
            raise Stopped(folder if given.out is not None else None)
        summary = {name: summarise_strategy(r) for name, r in by_strategy.items()}
        write_comparison(folder, summary)
        budget = comparison.max_queries
        atomic_write_bytes(
            folder / "curves.png",
            convergence_curves(
                curves(by_strategy),
                threshold=0.99,
                max_queries=budget,
                title=f"{classifier.name}: {comparison.runs} runs per digit, budget {budget:,}",
                white_box=[name for name in by_strategy if is_white_box(name)],
            ),
        )
        sweeps = {
            name: _read_back(folder / name, keep=given.out is not None) for name in by_strategy
        }
    return ComparisonResult(sweeps, summary, given.out)


def _comparison(comparison: object) -> Comparison:
    """``comparison`` checked: its strategies a sequence of names (``"square"`` is not the
    strategies s, q, u...), each with the sweep it will run made, which checks the classes
    (None: every class of the model), runs, seed, budget and start as :class:`SweepConfig`
    does."""
    checked = instance_of(comparison, Comparison, "comparison", "a Comparison")
    strategies = text_sequence(checked.strategies, "comparison.strategies")
    if not strategies:
        raise IdentikitError("comparison.strategies: no strategies to compare")
    flag(checked.allow_engine_change, "comparison.allow_engine_change")
    for strategy in strategies:
        checked.config(strategy)  # refuses an unknown strategy and bad settings, in one line
    return replace(checked, strategies=strategies)


def _animate(animate: object) -> bool | Collection[str]:
    """``report``'s ``animate``: True, False, or a collection of strategy names (one name as
    a str would be taken as its letters)."""
    if isinstance(animate, bool):
        return animate
    if (
        isinstance(animate, str | bytes)
        or not isinstance(animate, Collection)
        or not all(isinstance(name, str) for name in animate)
    ):
        raise IdentikitError(
            f"animate must be True, False or a collection of strategy names, got {shown(animate)}"
        )
    return animate


def evaluate(model: ModelLike, images: object, labels: object) -> Evaluation:
    """Accuracy, per-class accuracy and the confusion matrix (rows: the true class) of
    ``model`` on uint8 ``images`` (N, C, H, W) or (N, H, W) and their integer ``labels``, as
    ``identikit evaluate`` computes them. ``model`` is a Classifier, a model file (checkpoint,
    ONNX; loaded with the defaults) or a ``torch.nn.Module`` taking pixels in [0, 1] of the
    images' own shape; anything else, and images or labels of the wrong kind, are refused in
    one line before any model is loaded."""
    instance_of(model, (Classifier, nn.Module, str, os.PathLike), "model", MODEL_KINDS)
    pixels, truth = check_labelled(images, labels)
    if isinstance(model, nn.Module):
        # A module says its shape by the images it takes: no Classifier (whose default
        # shape is MNIST's) stands between them.
        return evaluate_module(model, pixels, truth)
    return evaluate_classifier(classifier_of(model), pixels, truth)


def judge(
    folder: str | os.PathLike[str],
    judges: Sequence[str] = ("cnn-seed1", "mlp", "softmax"),
    setup: JudgeSetup | None = None,
) -> list[JudgeResult]:
    """Judge the sweep in ``folder`` (or every sweep of a comparison's folder), as
    ``identikit judge`` does: each judge's agreement, its own accuracy on the dataset's test
    images (``judge_info``) and the nearest real images, written to each sweep's
    ``judge.json`` beside the earlier verdicts of other judges on the same identikits.
    Built-in judges are trained on first use and cached, and refused (IdentikitError) for a
    dataset of under 1,000 training images or below 50% accuracy; model files as judges are
    read with ``setup.conventions`` and ``setup.input_shape``."""
    # "" would judge the current folder and write judge.json there.
    where = path_argument(folder, "folder", "a folder")
    names = text_sequence(judges, "judges")
    if setup is not None:
        instance_of(setup, JudgeSetup, "setup", "a JudgeSetup or None")
    verdicts = judge_all(where, names, setup or JudgeSetup())
    return [JudgeResult(sweep, verdict) for sweep, verdict in verdicts]


def report(
    folder: str | os.PathLike[str],
    *,
    models: Sequence[str | os.PathLike[str]] = (),
    trust_code: bool = False,
    animate: bool | Collection[str] = True,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Report:
    """Write ``folder/report.html`` for whatever results ``folder`` holds, as
    ``identikit report`` does; ``models`` are the model files whose sweeps are animated
    (TorchScript ones only with ``trust_code``): all of them, or with ``animate`` a collection
    of strategy names only their sweeps, or none with ``animate=False``; ``log`` hears what
    takes time."""
    # "" would write report.html into the current folder.
    where = path_argument(folder, "folder", "a folder")
    if isinstance(models, str | os.PathLike) or not isinstance(models, Sequence):
        raise IdentikitError(f"models must be a sequence of model files, got {shown(models)}")
    files = [path_argument(m, "models[]", "a model file") for m in models]
    if log is not None and not callable(log):
        raise IdentikitError(f"log must be a function of one line, or None, got {shown(log)}")
    path = build_report(
        where,
        animate=_animate(animate),
        models=files,
        trust_code=flag(trust_code, "trust_code"),
        log=log,
        progress=flag(progress, "progress"),
    )
    return Report(path)
