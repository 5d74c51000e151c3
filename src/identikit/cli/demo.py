"""``make demo``: the whole pipeline on MNIST with default settings, reusing earlier work.

Data, both tutorial models (checkpoints already trained are reused), their certainty on real
versus random images, an identikit sweep of every digit on each model by the original method,
then the CNN's digits drawn from the model alone (issue 17): pen strokes found without
gradients (the black box) and with them (``identikit reconstruct``), no data read. Judges that
never saw the searches (the demo's softmax model and an MLP) and the nearest real digits give
their verdicts, and the report opens with a summary of them.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from identikit import api
from identikit.base.errors import CheckpointError, DifferentSweepError, IdentikitError
from identikit.classifier import Classifier, load_classifier
from identikit.cli.tables import format_certainty, format_summary, format_verdict
from identikit.data.datasets import load_mnist
from identikit.engines.options import EngineOptions
from identikit.models.checkpoint import load_checkpoint
from identikit.strategies.registry import StrategySpec
from identikit.studies.judge import JudgeSetup
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.reconstruction import BLACK_BOX, RECONSTRUCT, reconstruction_config
from identikit.sweeps.sweep import SweepOptions
from identikit.training.trainer import TrainSpec, train

DEMO_MODELS = ("softmax", "cnn")
DEMO_RUNS = 5
# The data-free reconstructions: runs per digit and steps (fewer than the command's default,
# to keep the demo within 5 minutes on 2 cores).
RECONSTRUCTIONS = {"black-box": (BLACK_BOX, 1, 100), "reconstruct": (RECONSTRUCT, 1, 160)}
# The model whose digits are also drawn from the model alone, and judged.
RECONSTRUCTED = "cnn"
# The judges of the CNN's identikits: the demo's own softmax model (trained apart from the CNN)
# and a built-in MLP (trained on first use, cached).
DEMO_JUDGES = ("softmax.pt", "mlp")


def ensure_model(
    architecture: str, out: Path, *, device: str, root: str | os.PathLike[str] | None
) -> float:
    """Train ``architecture`` into ``out`` unless a readable checkpoint is already there.

    Returns its test accuracy.
    """
    if out.is_file():
        try:
            _, meta = load_checkpoint(out)
        except CheckpointError as exc:
            print(f"retraining {architecture}: {exc}")
        else:
            accuracy = meta.get("test_accuracy")
            if meta["architecture"] == architecture and accuracy is not None:
                print(f"{architecture}: reusing {out}")
                return float(accuracy)
    # Certainty and identikits of an earlier model no longer hold: start its folder afresh.
    shutil.rmtree(out.with_suffix(""), ignore_errors=True)
    print(f"training {architecture} (default settings) ...")
    result = train(TrainSpec(architecture, root=root, device=device), out=out, log=print)
    print(f"{architecture}: trained in {result.seconds:.0f} s")
    return result.test_accuracy


def afresh_if_different(
    folder: Path, sweep: Callable[[Path], api.SearchResult]
) -> api.SearchResult:
    """``sweep(folder)``; where the folder holds a sweep of other settings (an earlier
    version's defaults), the demo's own folder is emptied and the sweep started afresh."""
    try:
        return sweep(folder)
    except DifferentSweepError:
        # rmtree refuses a link with a traceback, and what a link leads to is not the demo's.
        if folder.is_symlink():
            raise IdentikitError(
                f"{folder} is a link and holds another sweep; the demo empties only folders of "
                "its own: remove the link and run it again"
            ) from None
        shutil.rmtree(folder)
        return sweep(folder)


def demo_sweep(classifier: Classifier, folder: Path, checkpoint: Path) -> api.SearchResult:
    """Every digit, DEMO_RUNS runs each; a sweep left by an earlier version is redone."""
    config = SweepConfig(runs=DEMO_RUNS)
    options = SweepOptions(model_path=str(checkpoint))
    return afresh_if_different(
        folder, lambda out: api.search(classifier, config, out=out, options=options)
    )


def demo_reconstructions(classifier: Classifier, folder: Path, checkpoint: Path) -> None:
    """The CNN's digits from the model alone, black box then white box; a folder left by an
    earlier version is redone."""
    options = SweepOptions(model_path=str(checkpoint))
    for name, (strategy, runs, steps) in RECONSTRUCTIONS.items():
        print(f"drawing every digit from {checkpoint.name} alone: {strategy}, {steps} steps ...")
        config = reconstruction_config(StrategySpec(strategy), runs=runs, steps=steps)
        result = afresh_if_different(
            folder / name,
            functools.partial(_reconstruct, classifier, config, options),
        )
        print(format_summary(result.record))


def _reconstruct(
    classifier: Classifier, config: SweepConfig, options: SweepOptions, out: Path
) -> api.SearchResult:
    return api.reconstruct(classifier, config, out=out, options=options)


def demo_judges(out: Path, *, device: str, root: str | os.PathLike[str] | None) -> None:
    """The verdicts of judges that never saw the searches on each sweep of RECONSTRUCTED."""
    judges = [str(out / name) if name.endswith(".pt") else name for name in DEMO_JUDGES]
    setup = JudgeSetup(root=root, device=device, log=print)
    for name in ("search", *RECONSTRUCTIONS):
        folder = out / RECONSTRUCTED / name
        (verdict,) = api.judge(folder, judges, setup)
        print(format_verdict(verdict.verdict, folder))


def run_demo(out: Path, *, device: str = "auto", root: str | os.PathLike[str] | None = None) -> int:
    """Run every step for both models and print where the results are."""
    out.mkdir(parents=True, exist_ok=True)
    images, _ = load_mnist("train", root)
    test_images, _ = load_mnist("test", root)
    print(f"MNIST ready: {len(images)} training and {len(test_images)} test images")
    accuracies = {}
    for name in DEMO_MODELS:
        checkpoint = out / f"{name}.pt"
        accuracies[name] = ensure_model(name, checkpoint, device=device, root=root)
        classifier = load_classifier(
            checkpoint, device=device, engine=EngineOptions(backend="auto", log=print)
        )
        print(f"{name}: scoring with {classifier.choice.summary()}")
        certainty = api.certainty(classifier, root=root, out=out / name)
        print(format_certainty(name, certainty.statistics))
        print(f"searching identikits: {name}, every digit, {DEMO_RUNS} runs each ...")
        result = demo_sweep(classifier, out / name / "search", checkpoint)
        print(format_summary(result.record))
        if name == RECONSTRUCTED:
            demo_reconstructions(classifier, out / name, checkpoint)
    if RECONSTRUCTED in DEMO_MODELS:
        demo_judges(out, device=device, root=root)
    # The demo's own checkpoints, just trained or checked: the only models its report replays.
    print(f"writing the report {out / 'report.html'}: figures, and an animation per model ...")
    # Animations of the original method only: replaying the drawings would cost as much again
    # as drawing them (half a minute), and the demo keeps within 5 minutes.
    report = api.report(
        out,
        models=[out / f"{name}.pt" for name in DEMO_MODELS],
        log=print,
        progress=True,
        animate=("random-masks",),
    ).path
    print()
    for name, accuracy in accuracies.items():
        print(f"{name:8s} test accuracy {accuracy:.2%}   checkpoint {out / (name + '.pt')}")
        print(f"{'':8s} certainty  {out / name / 'certainty.png'}")
        print(f"{'':8s} identikits {out / name / 'search' / 'grid.png'}")
    for name in RECONSTRUCTIONS if RECONSTRUCTED in DEMO_MODELS else ():
        print(f"{'':8s} drawn from the model alone ({name}): {out / RECONSTRUCTED / name}")
    print(f"report   {report}   (open it in a browser)")
    return 0
