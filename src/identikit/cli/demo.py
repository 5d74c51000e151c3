"""``make demo``: the whole pipeline on MNIST with default settings, reusing earlier work.

Data, both tutorial models (checkpoints already trained are reused), their certainty on real
versus random images, and an identikit sweep of every digit on each model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from identikit import api
from identikit.base.errors import CheckpointError, DifferentSweepError
from identikit.classifier import Classifier, load_classifier
from identikit.cli.tables import format_certainty, format_summary
from identikit.data.datasets import load_mnist
from identikit.engines.options import EngineOptions
from identikit.models.checkpoint import load_checkpoint
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions
from identikit.training.trainer import TrainSpec, train

DEMO_MODELS = ("softmax", "cnn")
DEMO_RUNS = 5


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


def demo_sweep(classifier: Classifier, folder: Path, checkpoint: Path) -> api.SearchResult:
    """Every digit, DEMO_RUNS runs each; a sweep left by an earlier version is redone."""
    config = SweepConfig(runs=DEMO_RUNS)
    options = SweepOptions(model_path=str(checkpoint))
    try:
        return api.search(classifier, config, out=folder, options=options)
    except DifferentSweepError:
        # Other settings than today's defaults: the demo's own folder, so start it afresh.
        shutil.rmtree(folder)
        return api.search(classifier, config, out=folder, options=options)


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
    # The demo's own checkpoints, just trained or checked: the only models its report replays.
    print(f"writing the report {out / 'report.html'}: figures, and an animation per model ...")
    report = api.report(
        out, models=[out / f"{name}.pt" for name in DEMO_MODELS], log=print, progress=True
    ).path
    print()
    for name, accuracy in accuracies.items():
        print(f"{name:8s} test accuracy {accuracy:.2%}   checkpoint {out / (name + '.pt')}")
        print(f"{'':8s} certainty  {out / name / 'certainty.png'}")
        print(f"{'':8s} identikits {out / name / 'search' / 'grid.png'}")
    print(f"report   {report}   (open it in a browser)")
    return 0
