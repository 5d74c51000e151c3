"""A square sweep on ImageNet-sized inputs: peak memory and time (issue 16, item 7).

A randomly initialised ResNet-18 (He et al. 2016) of 1,000 classes for 3 x 224 x 224 images is
written as an ONNX file with static image dimensions and a dynamic batch, as users export
theirs, and ``identikit search --strategy square`` runs 10 classes x 1 run on it within a fixed
budget in a child process, whose peak resident set size is read from the kernel. identikit
reads the shape from the file; chunk sizes and state scale with the image (target: peak under
2 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from identikit.models import build_model
from identikit.models.export import onnx_bytes
from identikit.models.resnet import IMAGENET_SHAPE


def write_model(folder: Path) -> Path:
    """The ResNet-18 as ONNX, weights drawn from seed 0."""
    torch.manual_seed(0)
    model = build_model("resnet18", 1000, IMAGENET_SHAPE).eval()
    path = folder / "resnet18-imagenet-shape.onnx"
    path.write_bytes(onnx_bytes(model, torch.rand(2, *IMAGENET_SHAPE.dims)))
    return path


def run_sweep(model: Path, out: Path, budget: int, backend: str) -> tuple[float, float]:
    """Peak resident MiB and wall seconds of one ``identikit search`` child."""
    command = [
        sys.executable, "-m", "identikit", "search", "--model", str(model),
        "--strategy", "square", "--digits", "0-9", "--runs", "1",
        "--max-queries", str(budget), "--out", str(out), "--no-progress",
        "--backend", backend,
    ]  # fmt: skip
    # A data folder of its own: the engine is measured afresh, inside the measurement.
    env = {**os.environ, "IDENTIKIT_DATA": str(out.parent / f"data-{backend}")}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"the sweep failed (status {status})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=int, default=200, help="queries per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp))
        # auto: the engine and its chunk size measured first (timing batches scale with the
        # image too), then the sweep.
        for backend in ("auto",):
            out = Path(tmp) / backend
            peak, seconds = run_sweep(model, out, args.budget, backend)
            runs = json.loads((out / "results.json").read_text())["runs"]
            queries = sum(r["queries"] for r in runs)
            best = sorted(r["confidence"] for r in runs)
            print(
                f"ResNet-18, 1,000 classes, {IMAGENET_SHAPE} ONNX, --backend {backend}: square, "
                f"10 classes x 1 run, budget {args.budget:,}: {queries:,} queries in "
                f"{seconds:.0f} s ({queries / seconds:.1f}/s), peak resident memory "
                f"{peak:,.0f} MiB (target < 2,048); confidences {best[0]:.4f}..{best[-1]:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
