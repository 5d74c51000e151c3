"""How much does a model's certainty on random images depend on its training run?

The README's certainty table was once measured on one trained model of each kind; a fresh
clone trains its own (another seed, another CPU, bf16 where the CPU has it) and can see a very
different answer (a demo cnn was above 0.6 on 87% of uniform-noise images where the table said
26%). So: train each model with several seeds under its default recipe, measure the largest
softmax output on each source of images (``identikit certainty``'s sources, 10,000 images
each) and print, per source, the spread over seeds: the smallest and largest mean, and share
above 0.6, 0.9 and 0.99.

    python benchmarks/certainty_seeds.py [--seeds 0,1,2] [--models softmax,cnn] [--cache DIR]

Checkpoints are kept in ``--cache`` (default: <data root>/certainty-seeds), so a second run
measures without training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from identikit import TrainSpec, load_mnist, train
from identikit.base.errors import CheckpointError
from identikit.classifier import load_classifier
from identikit.data.datasets import default_root
from identikit.models.checkpoint import load_checkpoint
from identikit.studies.certainty import certainty_report, max_probabilities

COLUMNS = ("mean", "above_0.6", "above_0.9", "above_0.99")


def checkpoint(architecture: str, seed: int, cache: Path) -> tuple[Path, float, float | None]:
    """The checkpoint of ``architecture`` trained with ``seed`` (trained now if not cached),
    its test accuracy and the seconds training took (None when cached)."""
    path = cache / f"{architecture}-seed{seed}.pt"
    try:
        _, meta = load_checkpoint(path)
        return path, float(meta["test_accuracy"]), None
    except (CheckpointError, KeyError):
        pass
    started = time.perf_counter()
    result = train(TrainSpec(architecture, seed=seed), out=path, progress=False, log=lambda _: None)
    return path, result.test_accuracy, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="softmax,cnn")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = args.cache or default_root() / "certainty-seeds"
    cache.mkdir(parents=True, exist_ok=True)
    test_images, _ = load_mnist("test")
    for architecture in args.models.split(","):
        reports = []
        for seed in seeds:
            path, accuracy, seconds = checkpoint(architecture, seed, cache)
            classifier = load_classifier(path, device="cpu")
            reports.append(certainty_report(max_probabilities(classifier, test_images)))
            trained = "cached" if seconds is None else f"trained in {seconds:.0f} s"
            print(f"{architecture} seed {seed}: test accuracy {accuracy:.2%} ({trained})")
        print(f"\n{architecture}, {len(seeds)} seeds: min-max over seeds")
        print(f"{'source':16s}" + "".join(f"{c:>16s}" for c in COLUMNS))
        for source in reports[0]:
            cells = []
            for column in COLUMNS:
                values = [r[source][column] for r in reports]
                fmt = "{:.3f}" if column == "mean" else "{:.1%}"
                cells.append(f"{fmt.format(min(values))}-{fmt.format(max(values))}")
            print(f"{source:16s}" + "".join(f"{c:>16s}" for c in cells))
        print()


if __name__ == "__main__":
    main()
