"""`make bench`: every benchmark in turn, each printing its own measurements."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCHMARKS = [
    "search_throughput.py",
    "strategies.py",
    "recognisability.py",
    "sweep_vs_plain.py",
    "sweep_memory.py",
    "training.py",
    "certainty_seeds.py",
]


def main() -> None:
    here = Path(__file__).parent
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        sys.argv = [name]
        runpy.run_path(str(here / name), run_name="__main__")


if __name__ == "__main__":
    main()
