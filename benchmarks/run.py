"""`make bench`: every benchmark in turn, each printing its own measurements."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import torch

BENCHMARKS = [
    "search_throughput.py",
    "search_throughput.py --architecture colour-cnn --shape 3,32,32",
    "strategies.py",
    "recognisability.py",
    "reconstruction.py",
    "sweep_vs_plain.py",
    "sweep_memory.py",
    "training.py",
    "certainty_seeds.py",
    "any_shape.py",
    "large_images.py",
    "cluster.py",
]


def main() -> None:
    here = Path(__file__).parent
    # The GPU's figures (issue 19) where there is one to measure.
    for command in BENCHMARKS + (["gpu.py"] if torch.cuda.is_available() else []):
        print(f"== {command}", flush=True)
        name, *arguments = command.split()
        sys.argv = [name, *arguments]
        runpy.run_path(str(here / name), run_name="__main__")


if __name__ == "__main__":
    main()
