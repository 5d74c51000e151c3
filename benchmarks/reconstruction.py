"""The archaeologists' question (issue 17): recognisable digits from the network alone?

On the default `cnn` (trained on first use and cached), 10 runs per digit of each recipe:

- the data prior, for reference: gradient ascent with the `manifold,blur` priors (the manifold
  is the principal subspace of the 60,000 MNIST training digits);
- the data-free reconstruction, white box: `identikit reconstruct` (pen strokes, random views);
- the data-free reconstruction, black box: `identikit reconstruct --black-box`.

Each is judged by independently trained models (`cnn-seed1`, `mlp`, `softmax`) and by the
nearest real training digit; beside them, how many runs reached 0.99 on the model itself and
the diversity of each digit's runs (mean pairwise distance, in the units of the pixel values),
next to that of ten real test digits of each class. Then, per digit, the share of its
identikits the three judges call that digit (which digits the network remembers), and the
diversity of its runs.

Targets: data-free white box >= 95% for `cnn-seed1` and `mlp`, >= 85% for `softmax` and the
nearest digit, every run at >= 0.99; black box every judge and the nearest digit >= 60%.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from identikit import api
from identikit.classifier import load_classifier
from identikit.data.images import load_images
from identikit.strategies.registry import StrategySpec
from identikit.studies.judge import JudgeSetup
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.reconstruction import BLACK_BOX, reconstruction_config
from strategies import default_cnn  # type: ignore[import-not-found]

# The judges of MNIST identikits (the registry also holds colour ones).
JUDGES = ("cnn-seed1", "mlp", "softmax")

DATA_PRIOR = "gradient, manifold,blur (data)"
WHITE_BOX = "reconstruct (data-free)"
BLACK_BOX_NAME = "reconstruct --black-box (data-free)"


def recipes(runs: int) -> dict[str, SweepConfig]:
    """The sweeps compared, ``runs`` runs per digit each."""
    return {
        DATA_PRIOR: SweepConfig(
            runs=runs,
            strategy="gradient",
            strategy_settings={"priors": "manifold,blur"},
            start="noise",
            patience=10**9,
            max_queries=3000,
        ),
        WHITE_BOX: reconstruction_config(runs=runs),
        BLACK_BOX_NAME: reconstruction_config(StrategySpec(BLACK_BOX), runs=runs),
    }


def diversities(images: np.ndarray, digits: np.ndarray) -> list[float]:
    """Per digit, the mean pairwise (Euclidean) distance between that digit's images."""
    means = []
    for digit in np.unique(digits):
        own = images[digits == digit].reshape(int((digits == digit).sum()), -1).astype(float)
        pairs = [np.linalg.norm(a - b) for a, b in itertools.combinations(own, 2)]
        means.append(float(np.mean(pairs)) if pairs else 0.0)
    return means


def diversity(images: np.ndarray, digits: np.ndarray) -> float:
    """The mean over digits of :func:`diversities`."""
    return float(np.mean(diversities(images, digits)))


def real_diversity(per_digit: int) -> float:
    """:func:`diversity` of the first ``per_digit`` MNIST test digits of each class."""
    data = load_images("mnist")
    labels = data.test_labels
    chosen = np.concatenate([np.flatnonzero(labels == d)[:per_digit] for d in range(10)])
    return diversity(data.test_images[chosen].astype(float) / 255.0, labels[chosen])


def run(name: str, config: SweepConfig, folder: Path, model: Path) -> dict[str, Any]:
    """Sweep, judge and summarise one recipe."""
    classifier = load_classifier(model, device="cpu")
    if config.strategy == "gradient":
        result = api.search(classifier, config, out=folder)
    else:
        result = api.reconstruct(classifier, config, out=folder)
    setup = JudgeSetup(device="cpu", log=lambda line: print(line, file=sys.stderr))
    (verdict,) = api.judge(folder, JUDGES, setup)
    digits = np.array([run.digit for run in result.runs])
    confidences = np.array([run.confidence for run in result.runs])
    matrices = {judge: np.array(m) for judge, m in verdict.verdict["transfer_matrices"].items()}
    per_digit = sum(np.diag(m) / m.sum(axis=1) for m in matrices.values()) / len(matrices)
    return {
        "name": name,
        "uses_data": result.record["uses_data"],
        "runs": len(result.runs),
        "sure": int((confidences >= 0.99).sum()),
        "judges": verdict.agreement,
        "nearest": verdict.nearest_neighbour,
        "diversity": diversity(result.images, digits),
        "queries": int(np.median([run.queries for run in result.runs])),
        "seconds": result.record["seconds"],  # the sweep's own, resumed or not
        "per_digit": per_digit,
        "diversities": diversities(result.images, digits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs per digit")
    parser.add_argument("--out", type=Path, default=None, help="keep the sweeps here")
    args = parser.parse_args()
    model = default_cnn()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        for name, config in recipes(args.runs).items():
            folder = out / name.split()[0].replace(",", "")
            if name == BLACK_BOX_NAME:
                folder = out / "black-box"
            rows.append(run(name, config, folder, model))
    judges = " ".join(f"{j:>9s}" for j in JUDGES)
    print(
        f"default cnn, {args.runs} runs per digit; diversity of real test digits: "
        f"{real_diversity(args.runs):.2f}"
    )
    print(f"{'recipe':38s} data  >=0.99 {judges}  nearest  diversity  queries  seconds")
    for row in rows:
        shares = " ".join(f"{row['judges'][j]:9.0%}" for j in JUDGES)
        print(
            f"{row['name']:38s} {'yes' if row['uses_data'] else 'no':>4s} "
            f"{row['sure']:3d}/{row['runs']:<3d} {shares} {row['nearest']:8.0%} "
            f"{row['diversity']:10.2f} {row['queries']:8,d} {row['seconds']:8.0f}"
        )
    print("\nper digit: share of its identikits the three judges call that digit (mean)")
    print(f"{'recipe':38s} " + " ".join(f"{d:>4d}" for d in range(10)))
    for row in rows:
        print(f"{row['name']:38s} " + " ".join(f"{v:4.0%}" for v in row["per_digit"]))
    print("\nper digit: diversity of its identikits (mean pairwise distance)")
    for row in rows:
        print(f"{row['name']:38s} " + " ".join(f"{v:4.1f}" for v in row["diversities"]))


if __name__ == "__main__":
    main()
