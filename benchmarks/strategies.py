"""Query efficiency of every strategy on the default `cnn`, under one budget (issue 5).

Targets: the best black-box strategy brings 100% of runs of every digit to 0.99 within 2,000
queries, with a median of at most 130, and >= 95% to 0.9999 within 10,000; `gradient` reaches
0.99 within 50 steps and 0.9999 within 200. The default `cnn` is trained (seed 0) on first use
and cached beside the MNIST files.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from identikit.classifier import load_classifier
from identikit.data.datasets import default_root
from identikit.strategies import STRATEGIES
from identikit.sweeps.compare import (
    THRESHOLDS,
    Comparison,
    reach_table,
    run_comparison,
    summarise_strategy,
)
from identikit.sweeps.sweep import SweepOptions
from identikit.training.trainer import train


def default_cnn() -> Path:
    path = default_root() / "bench" / "cnn-seed0.pt"
    if not path.is_file():
        train("cnn", out=path, options=SweepOptions(progress=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--max-queries", type=int, default=10_000)
    parser.add_argument("--strategies", default=",".join(sorted(STRATEGIES)))
    args = parser.parse_args()
    classifier = load_classifier(default_cnn(), device="cpu")
    with tempfile.TemporaryDirectory() as out:
        comparison = Comparison(
            tuple(args.strategies.split(",")),
            digits=tuple(range(10)),
            runs=args.runs,
            max_queries=args.max_queries,
        )
        by_strategy = run_comparison(
            classifier, comparison, out, options=SweepOptions(progress=False)
        )
    assert by_strategy is not None
    print(f"default cnn, 10 digits x {args.runs} runs, budget {args.max_queries:,} queries")
    for name, results in by_strategy.items():
        row = summarise_strategy(results)
        worst = {str(t): max((r[str(t)] or 0) for r in reach_table(results)) for t in THRESHOLDS}
        cells = "  ".join(
            f"{t}: {row['success'][str(t)]:4.0%} median {row['median_queries'][str(t)] or '-'} "
            f"max {worst[str(t)]}"
            for t in THRESHOLDS
        )
        print(f"{name:13s} {cells}  ({row['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
