"""Search-loop throughput against the model's own rate on one well-sized batch, in one run.

Targets: the random-mask search loop scores candidates at >= 70% of the rate the same model
reaches scoring one well-sized batch in isolation (issue 3); through ONNX Runtime (the CNN
exported), >= 70% of ONNX Runtime's own rate on one batch (issue 6). The isolated rate is the
best over several batch sizes; the two measurements alternate for several rounds and each
keeps its best round, so a slow spell of a shared machine does not favour either. Weights do
not change the speed, so a freshly initialised model of each architecture is used.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from identikit.classifier import Classifier, load_classifier
from identikit.export import export_model
from identikit.models import build_model
from identikit.search import Budget, Converged, Stuck, advance, initial_state, make_strategy

BATCH_SIZES = (64, 128, 256, 500)


def isolated_rate(
    score: Callable[[torch.Tensor], object], batch_size: int, seconds: float
) -> float:
    """Images per second scoring one batch of ``batch_size`` images again and again."""
    batch = torch.rand(batch_size, 1, 28, 28)
    score(batch)  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        score(batch)
        done += batch_size
    return done / (time.perf_counter() - started)


def search_rate(classifier: Classifier, runs: int, seconds: float) -> float:
    """Images per second inside the random-mask search loop (10 digits x ``runs`` runs)."""
    strategy = make_strategy("random-masks")
    targets = [d for d in range(10) for _ in range(runs)]
    rules = [Converged(0.999999), Stuck(10**6), Budget(10**9)]
    state = initial_state(classifier, targets, list(range(len(targets))))
    advance(state, strategy, classifier, rules, max_iterations=1)  # warm-up
    before, started = classifier.queries, time.perf_counter()
    while time.perf_counter() - started < seconds:
        advance(state, strategy, classifier, rules, max_iterations=1)
    return (classifier.queries - before) / (time.perf_counter() - started)


def engines(names: list[str], folder: Path) -> list[tuple[str, Classifier, Callable]]:
    """(label, classifier, isolated scorer) per model: PyTorch models, and the CNN via ONNX."""
    out: list[tuple[str, Classifier, Callable]] = []
    for name in names:
        if name == "cnn-onnx":
            export_model(build_model("cnn"), folder / "cnn.onnx", fmt="onnx")
            classifier = load_classifier(folder / "cnn.onnx", device="cpu")
            out.append((name, classifier, classifier.model))  # ONNX Runtime alone
        else:
            classifier = Classifier(build_model(name), name=name)
            out.append((name, classifier, classifier.log_probabilities))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="cnn,cnn-onnx,softmax")
    parser.add_argument("--runs", type=int, default=2, help="runs per digit in the search loop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        for name, classifier, alone_score in engines(args.models.split(","), Path(folder)):
            alone: dict[int, float] = dict.fromkeys(BATCH_SIZES, 0.0)
            loop = 0.0
            for _ in range(args.rounds):
                for size in BATCH_SIZES:
                    rate = isolated_rate(alone_score, size, args.seconds / 2)
                    alone[size] = max(alone[size], rate)
                loop = max(loop, search_rate(classifier, args.runs, args.seconds))
            best = max(alone, key=lambda size: alone[size])
            print(
                f"{name:8s} isolated, best batch ({best}): {alone[best]:10,.0f} images/s   "
                f"search loop (chunk {classifier.chunk_size}): {loop:10,.0f} images/s   "
                f"ratio {loop / alone[best]:.2f}"
            )


if __name__ == "__main__":
    main()
