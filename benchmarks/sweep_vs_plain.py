"""The original method: identikit's sweep against a plain PyTorch implementation (issue 8).

The plain implementation is what one writes first: one run at a time, 500 candidates per step
scored in one eager forward pass, the same mask distribution, stopping rules, settings and seeds
(each run draws from the same generator as identikit's, so both find the same identikits up to
floating-point ties). Prints both wall times and their ratio (target: identikit >= 4x faster),
and checks that the two agree on every run's outcome.

identikit scores with the engine it picks itself (``backend="auto"``, measured before the clock
starts), in fp32, in int8 and, where the CPU has bfloat16 instructions, in bf16 (candidates
ranked in int8 or bf16, the kept one re-scored in fp32: another search, so its outcomes are
compared by convergence rather than run by run). The methods take turns digit by digit, so
that the drift of a shared machine's speed falls on all of them alike; identikit thus runs ten
one-digit sweeps and pays a sweep's fixed costs (start, results, grid) ten times, not once.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from identikit.classifier import load_classifier
from identikit.engines.options import EngineOptions
from identikit.engines.precision import bf16_supported
from identikit.models import build_model
from identikit.strategies import make_strategy
from identikit.strategies.base import run_generator
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions, sweep_to_folder
from strategies import default_cnn  # type: ignore[import-not-found]


@torch.inference_mode()
def plain_run(
    model: torch.nn.Module, digit: int, seed: int, config: SweepConfig
) -> tuple[float, int]:
    """One run of the original method, written plainly, on the model's device (one ``.item()``
    synchronisation a step on a GPU); returns (confidence, queries)."""
    strategy = make_strategy("random-masks")
    device = next(model.parameters()).device
    base = torch.zeros(1, 1, 28, 28, device=device)
    best = torch.log_softmax(model(base), 1)[0, digit].item()
    queries, stale, iteration = 1, 0, 0
    while True:
        if best >= math.log(config.target) or stale >= config.patience:
            break
        if queries + strategy.candidates > config.max_queries:
            break
        generator = run_generator(seed, iteration, device)
        u = torch.rand((strategy.candidates, 1, 28, 28), generator=generator, device=device)
        masks = (u * (2 / strategy.mask_density) - 1) * (u < strategy.mask_density)
        candidates = (base + masks).clamp(0, 1)
        scores = torch.log_softmax(model(candidates), 1)[:, digit]
        queries += strategy.candidates
        iteration += 1
        top = int(scores.argmax())
        if scores[top].item() > best:
            best, base, stale = scores[top].item(), candidates[top : top + 1], 0
        else:
            stale += 1
    return math.exp(best), queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs per digit")
    parser.add_argument("--max-queries", type=int, default=SweepConfig.max_queries)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (a GPU: 10 x 100 runs)")
    args = parser.parse_args()
    # The CNN's 10 classes, named: the work ahead and the digit-by-digit loop need them.
    config = SweepConfig(classes=range(10), runs=args.runs, max_queries=args.max_queries)
    path = default_cnn()
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    precisions = ["fp32"] + (["int8"] if cpu else []) + (["bf16"] if bf16_supported(device) else [])
    model = build_model("cnn")
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu")["state_dict"])
    model.eval().to(device)
    seconds = dict.fromkeys(["plain", *precisions], 0.0)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in precisions}
    plain: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        classifiers = {}
        for precision in precisions:
            # The work ahead, as `identikit search` tells its engine choice: the whole budget.
            work = len(config.digits) * config.runs * config.max_queries
            engine = EngineOptions(
                backend="auto", precision=precision, cache_dir=Path(folder) / "cache", work=work
            )
            classifiers[precision] = load_classifier(path, device=args.device, engine=engine)
            print(f"identikit {precision}: {classifiers[precision].choice.summary()}", flush=True)
        # Digit by digit, each method in turn: the machine's speed drifts by a third over
        # minutes, and interleaving spreads the drift over all of them. A run's seed depends on
        # (sweep seed, digit, run) only, so these are the runs of the one 10-digit sweep.
        for digit in config.digits:
            part = dataclasses.replace(config, digits=(digit,))
            for precision, classifier in classifiers.items():
                started = time.perf_counter()
                outcome = sweep_to_folder(
                    classifier,
                    part,
                    Path(folder) / f"{precision}-{digit}",
                    options=SweepOptions(progress=False),
                )
                seconds[precision] += time.perf_counter() - started
                assert outcome.results is not None
                runs[precision] += outcome.results["runs"]
            started = time.perf_counter()
            plain += [plain_run(model, d, s, config) for d, _, s in part.layout()]
            seconds["plain"] += time.perf_counter() - started
    theirs = seconds["plain"]
    converged = sum(p[0] >= config.target for p in plain)
    print(
        f"10 digits x {args.runs} runs of random-masks (budget {config.max_queries:,}), "
        f"default cnn, {_where(device)}, digit by digit in turn"
    )
    print(
        f"plain PyTorch, one run at a time: {theirs:7.1f} s   converged {converged}/{len(plain)}"
        f"   queries {sum(p[1] for p in plain):,}"
    )
    for precision in precisions:
        ours, done = seconds[precision], runs[precision]
        same = sum(
            p[1] == r["queries"] and abs(p[0] - r["confidence"]) < 1e-4
            for p, r in zip(plain, done, strict=True)
        )
        print(
            f"identikit sweep {precision}: {ours:7.1f} s   ratio {theirs / ours:.2f}x (target >= 4)"
            f"   converged {sum(r['status'] == 'converged' for r in done)}/{len(done)}"
            f"   queries {sum(r['queries'] for r in done):,}"
            + (
                f"   runs with the same outcome as plain: {same}/{len(done)}"
                if precision == "fp32"
                else ""
            )
        )


def _where(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
