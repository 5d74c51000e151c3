"""Training speed: default `cnn` and `softmax` on real MNIST, seconds and test accuracy.

Target (issue 2): the default `cnn` reaches >= 99.2% in <= 4 minutes on a 2-core CPU.
Also times loading all 70,000 MNIST images (target: well under a second).
"""

from __future__ import annotations

import argparse
import time

import torch

from identikit import load_mnist, train


def bench_loading() -> float:
    load_mnist("train")  # fetch on first use, outside the timing
    started = time.perf_counter()
    load_mnist("train")
    load_mnist("test")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="softmax,cnn")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"load 70,000 MNIST images (checksums verified): {bench_loading():.2f} s")
    for name in args.models.split(","):
        result = train(name, progress=False)
        print(
            f"train {name:8s} default: {result.seconds:6.1f} s, {result.epochs} epochs, "
            f"test accuracy {result.test_accuracy:.2%}"
        )


if __name__ == "__main__":
    main()
