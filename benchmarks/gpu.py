"""Issue 19's figures on a GPU, in one prepared run.

Run from the source tree on the GPU machine, with the MNIST files beside it::

    PYTHONPATH=src python benchmarks/gpu.py            # --device cuda
    PYTHONPATH=src python benchmarks/gpu.py --device cpu --quick   # the same script, tried here

Prints, for the card, torch and CUDA versions it names:

1. each PyTorch engine (eager, channels_last, ``torch.compile``) in fp32 and bf16 scoring one
   batch of the default `cnn` again and again, at batches of 8,192 and 65,536 images
   (``torch.compile`` at the larger only: each batch size is a compilation of its own): the
   isolated rates (images/s), and the best of them;
2. the search loop of the original method (10 digits x 100 runs, 500 candidates a step) with
   the engine identikit picks, in fp32 and bf16, and its ratio to the best isolated rate
   (targets: >= 0.9x; bf16 >= 3 M images/s on an H100/H200); measured in the same run with the
   GPU's groups (``GPU_GROUP_IMAGES``: a whole iteration at once) and with the CPU's groups of
   16,384 candidates that a GPU had before;
3. a 10 x 100 sweep of the original method against the plain GPU implementation (one run at a
   time, 500 candidates a forward pass, one ``.item()`` a step; ``sweep_vs_plain.py --device``)
   (target: >= 4x);
4. the `cnn` trained with its own recipe: seconds of training and test accuracy (target: 99.2%
   in <= 5 s).

Weights do not change a rate, so 1 and 2 use a freshly initialised `cnn`.
"""

from __future__ import annotations

import argparse
import math
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.engines.options import EngineOptions
from identikit.engines.precision import bf16_supported, tf32_in_use
from identikit.models import build_model
from identikit.models.info import ModelInfo
from identikit.strategies import base
from identikit.training.trainer import TrainSpec, train
from search_throughput import search_rate  # type: ignore[import-not-found]

MNIST = ImageShape(1, 28, 28)
BACKENDS = ("eager", "channels_last", "compile")


def synchronised(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def isolated(classifier: Classifier, batch: int, seconds: float) -> float:
    """Images per second scoring one batch of ``batch`` images again and again."""
    images = torch.rand(MNIST.batch(batch), device=classifier.device)
    classifier.score(images)  # warm-up (and a compiled graph's compilation)
    synchronised(classifier.device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.score(images)
        done += batch
    synchronised(classifier.device)
    return done / (time.perf_counter() - started)


def engine_rates(
    model: torch.nn.Module, device: torch.device, batches: tuple[int, ...], seconds: float
) -> dict[tuple[str, str, int], float]:
    """(backend, precision, batch) -> isolated images/s, for every engine that runs here."""
    precisions = ["fp32"] + (["bf16"] if bf16_supported(device) else [])
    rates = {}
    for precision in precisions:
        for backend in BACKENDS:
            for batch in batches[-1:] if backend == "compile" else batches:
                engine = EngineOptions(backend=backend, precision=precision, chunk_size=batch)
                try:
                    classifier = Classifier(
                        model, ModelInfo(sha256="gpu"), device=device, engine=engine
                    )
                except Exception as exc:  # an engine that cannot run here is said, not fatal
                    print(f"  {backend} {precision} @{batch}: not run ({exc})", flush=True)
                    continue
                rate = isolated(classifier, batch, seconds)
                rates[(backend, precision, batch)] = rate
                print(
                    f"  {backend:>13} {precision} @{batch:>6}: {rate:>12,.0f} images/s", flush=True
                )
    return rates


def loop_rates(
    model: torch.nn.Module, device: torch.device, runs: int, seconds: float
) -> dict[str, tuple[float, float, str]]:
    """The search loop's images/s with the engine identikit picks, per precision: with the
    device's own groups, and with groups of the CPU's GROUP_IMAGES (as a GPU had before)."""
    precisions = ["fp32"] + (["bf16"] if bf16_supported(device) else [])
    out = {}
    for precision in precisions:
        engine = EngineOptions(backend="auto", precision=precision, work=10 * runs * 100_000)
        classifier = Classifier(model, ModelInfo(sha256="gpu"), device=device, engine=engine)
        rate = search_rate(classifier, runs, seconds)
        own = base.GPU_GROUP_IMAGES
        base.GPU_GROUP_IMAGES = base.GROUP_IMAGES
        try:
            before = search_rate(classifier, runs, seconds)
        finally:
            base.GPU_GROUP_IMAGES = own
        out[precision] = (rate, before, classifier.choice.summary())
    return out


def section(title: str, run: Callable[[], None]) -> None:
    """Print ``title``, then run it; an error ends that section alone, said in one line, so
    that one figure failing on the device still leaves the others measured."""
    print(title, flush=True)
    try:
        run()
    except Exception as exc:
        print(f"  failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes: to try the script")
    args = parser.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    batches = (256, 1024) if quick else (8192, 65536)
    seconds = 0.5 if quick else 2.0
    runs = 2 if quick else 100
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}; TF32 in fp32: "
        f"{tf32_in_use(device)}",
        flush=True,
    )
    model = build_model("cnn").eval()
    rates: dict[tuple[str, str, int], float] = {}

    def isolated_rates() -> None:
        rates.update(engine_rates(model, device, batches, seconds))

    def search_loop() -> None:
        measured = loop_rates(model, device, runs, seconds * 3)
        for precision, (rate, before, summary) in measured.items():
            best = max((r for (_, p, _), r in rates.items() if p == precision), default=math.nan)
            print(
                f"  {precision}: {rate:,.0f} images/s = {rate / best:.2f}x the best isolated "
                f"{best:,.0f} (target >= 0.9x){' , >= 3 M' if precision == 'bf16' else ''}; "
                f"groups of {base.GROUP_IMAGES:,} candidates: {before:,.0f} images/s "
                f"({rate / before:.2f}x); {summary}",
                flush=True,
            )

    def against_plain() -> None:
        sys.argv = ["sweep_vs_plain.py", "--device", args.device, "--runs", str(runs)]
        if quick:
            sys.argv += ["--max-queries", "3000"]
        runpy.run_path(str(Path(__file__).parent / "sweep_vs_plain.py"), run_name="__main__")

    def training() -> None:
        spec = TrainSpec("cnn", device=args.device, epochs=1 if quick else None)
        result = train(spec, progress=False)
        print(
            f"  cnn: {result.test_accuracy:.2%} after {result.epochs} epochs in "
            f"{result.seconds:.1f} s (target 99.2% in <= 5 s)",
            flush=True,
        )

    section("1. isolated rates", isolated_rates)
    section(f"2. search loop, 10 digits x {runs} runs", search_loop)
    # The quick one before the long one: a device run that meets its time limit in 3 has 4.
    section("4. training the cnn", training)
    section(f"3. 10 x {runs} sweep against the plain implementation", against_plain)


if __name__ == "__main__":
    main()
