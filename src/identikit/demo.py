"""``make demo``: the whole pipeline on MNIST with default settings, reusing earlier work."""

from __future__ import annotations

import os
from pathlib import Path

from identikit.data import load_mnist
from identikit.errors import CheckpointError
from identikit.models.checkpoint import load_checkpoint
from identikit.training import train

DEMO_MODELS = ("softmax", "cnn")


def ensure_model(
    architecture: str, out: Path, *, device: str, root: str | os.PathLike[str] | None
) -> float:
    """Train ``architecture`` into ``out`` unless a readable checkpoint is already there.

    Returns its test accuracy.
    """
    if out.is_file():
        try:
            _, meta = load_checkpoint(out)
        except CheckpointError as exc:
            print(f"retraining {architecture}: {exc}")
        else:
            if meta["architecture"] == architecture:
                print(f"{architecture}: reusing {out}")
                return float(meta["test_accuracy"])
    print(f"training {architecture} (default settings) ...")
    result = train(architecture, root=root, device=device, out=out, log=print)
    print(f"{architecture}: trained in {result.seconds:.0f} s")
    return result.test_accuracy


def run_demo(out: Path, *, device: str = "auto", root: str | os.PathLike[str] | None = None) -> int:
    """Fetch MNIST, train (or reuse) both tutorial models, print their test accuracies."""
    out.mkdir(parents=True, exist_ok=True)
    images, _ = load_mnist("train", root)
    print(f"MNIST ready: {len(images)} training images")
    accuracies = {
        name: ensure_model(name, out / f"{name}.pt", device=device, root=root)
        for name in DEMO_MODELS
    }
    print()
    for name, accuracy in accuracies.items():
        print(f"{name:8s} test accuracy {accuracy:.2%}   checkpoint {out / (name + '.pt')}")
    return 0
