"""Are identikits recognisable? Independent judges and nearest real digits (issue 5).

Target: with priors on, >= 90% of identikits are called their digit by each independent judge
(a CNN trained with another seed, an MLP, the softmax model) and >= 80% have a nearest real
training digit of their own class. Compared with the original method on the same model. The
default `cnn` and the judges are trained on first use and cached.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from identikit.classifier import load_classifier
from identikit.studies.judge import JudgeSetup, judge_sweep
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from identikit.sweeps.training_data import prior_inputs
from strategies import default_cnn  # type: ignore[import-not-found]

# The judges of MNIST identikits (the registry also holds colour ones).
JUDGES = ("cnn-seed1", "mlp", "softmax")

SWEEPS = {
    "random-masks (original)": SweepConfig(runs=3),
    "gradient, priors manifold,blur": SweepConfig(
        runs=10,
        strategy="gradient",
        strategy_settings={"priors": "manifold,blur"},
        start="noise",
        patience=10**9,
        max_queries=3000,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    classifier = load_classifier(default_cnn(), device="cpu")
    print(
        f"{'identikits':34s} {'n':>4s} "
        + " ".join(f"{j:>10s}" for j in JUDGES)
        + "  nearest-real  converged"
    )
    with tempfile.TemporaryDirectory() as out:
        for name, config in SWEEPS.items():
            folder = Path(out) / name.split()[0]
            # The priors learn from MNIST's training images, the default cnn's data.
            priors = prior_inputs(config.spec.needs(), "mnist")
            outcome = sweep_to_folder(
                classifier, config, folder, priors=priors, options=SweepOptions(progress=False)
            )
            assert outcome.results is not None
            setup = JudgeSetup(device="cpu", log=lambda line: print(line, file=sys.stderr))
            verdict = judge_sweep(folder, list(JUDGES), setup)
            converged = sum(r["status"] == "converged" for r in outcome.results["runs"])
            print(
                f"{name:34s} {verdict['identikits']:4d} "
                + " ".join(f"{verdict['judges'][j]:10.0%}" for j in JUDGES)
                + f"  {verdict['nearest_neighbour']:12.0%}  {converged:9d}"
            )


if __name__ == "__main__":
    main()
