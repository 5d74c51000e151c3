"""Peak memory of a 10-digit x 100-run sweep of the original method (issue 8: under 1 GiB).

The sweep's memory is set in its first iterations (the state of all runs, one group of
candidates, the model's activations for one chunk) and grows afterwards only by each run's
history of confidences, a few bytes per iteration. So the sweep runs for ``--iterations``
iterations in a child process, whose peak resident set size is read from the kernel, with the
engine identikit picks itself (measured and cached by a first child), at each precision.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import torch

from identikit.engines.precision import bf16_supported

CHILD = """
import sys
from identikit.classifier.classifier import Classifier
from identikit.engines.options import EngineOptions
from identikit.sweeps.experiment import SweepConfig
from identikit.models import build_model
from identikit.strategies import advance, initial_state, make_strategy
config = SweepConfig(classes=range(10), runs=100)  # the CNN's 10 classes
engine = EngineOptions(backend="auto", precision=sys.argv[2])
classifier = Classifier(build_model("cnn"), engine=engine)
print(classifier.choice.summary(), flush=True)
layout = config.layout()
state = initial_state(classifier, [d for d, _, _ in layout], [s for _, _, s in layout])
advance(state, make_strategy("random-masks"), classifier, config.rules(),
        max_iterations=int(sys.argv[1]))
"""


def peak_mib(iterations: int, precision: str) -> float:
    """Peak resident memory of one child process running the sweep."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(iterations), precision])
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"the sweep failed (status {status})")
    return usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=1)
    args = parser.parse_args()
    precisions = ["fp32", "int8"] + (["bf16"] if bf16_supported(torch.device("cpu")) else [])
    for precision in precisions:
        peak_mib(0, precision)  # the engine is measured (and cached) outside the measurement
        peak = peak_mib(args.iterations, precision)
        print(
            f"10 digits x 100 runs, random-masks, {precision}, {args.iterations} iterations: "
            f"peak resident memory {peak:,.0f} MiB (target < 1,024)",
            flush=True,
        )


if __name__ == "__main__":
    main()
