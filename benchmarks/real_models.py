"""Beliefs a stranger recognises (issue 30): identikits of the shared real CIFAR-10 and ImageNet
models, drawn from the network alone, judged by independent published networks.

For each source model (read ../shared/real-models/README.md):

1. `identikit reconstruct` (its colour recipe: DeepInversion's batch-norm statistics term,
   jitter, flips, TV and L2 priors) draws its classes, `--runs` runs a class;
2. the same recipe without the statistics term (`--option bn_weight=0`);
3. the README's earlier colour recipe, `search --strategy gradient --prior
   colour,fourier,transforms,blur --target 0.999999 --max-queries 400`;
4. with `--black-box`, the recipe's black-box twin (estimated gradients, no statistics term).

Each set is re-scored by its source model (runs >= 0.99) and judged by a network of another
architecture: the share it calls its class (top-1, and top-5 for ImageNet), beside that judge's
accuracy on real test images. Parts: `cifar` (ResNet-20 drawn and judged by ResNet-56, and the
reverse; targets >= 80%) and `imagenet` (EfficientNet-Lite0, every 50th class, judged by the
quantized MobileNetV2; target >= 50% top-1 within 15 minutes). Skips, saying why, where the
shared folder is absent.

    python benchmarks/real_models.py [cifar] [imagenet] [--runs N]
        [--recipes bn,plain,readme,black-box] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-models"
IMAGENET_NORMAL = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CIFAR = ("--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
EFFICIENTNET = ("--mean", "0.5", "--std", "0.5")
RECIPES = ("bn", "plain", "readme", "black-box")


def identikit(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own; a failure ends the benchmark, naming it."""
    command = [sys.executable, "-m", "identikit", *args, "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"identikit {' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done


def draw(recipe: str, model: list[str], out: Path, classes: str, runs: int) -> float:
    """Draw ``classes`` x ``runs`` with ``recipe`` into ``out``; its seconds."""
    choose = ["--classes", classes, "--runs", str(runs), "--seed", "0", "--out", str(out)]
    start = time.perf_counter()
    if recipe == "readme":
        identikit(
            *("search", *model, *choose, "--strategy", "gradient"),
            *("--prior", "colour,fourier,transforms,blur", "--target", "0.999999"),
            *("--max-queries", "400"),
        )
    else:
        extra = {"bn": [], "plain": ["--option", "bn_weight=0"], "black-box": ["--black-box"]}
        identikit("reconstruct", *model, *choose, *extra[recipe])
    return time.perf_counter() - start


def identikits(out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A sweep's identikits as pixels (N, 3, H, W) and the class each was drawn for."""
    found = np.load(out / "identikits.npz")
    images = torch.from_numpy(found["images"]).float()
    if images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    key = "classes" if "classes" in found.files else "digits"
    return images, torch.from_numpy(found[key]).long()


def calls(judge: Classifier, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """The share of ``images`` that ``judge`` calls their class, top-1 and top-5."""
    top = judge.log_probabilities(images).topk(5, dim=1).indices
    top1 = (top[:, 0] == targets).float().mean().item()
    top5 = (top == targets[:, None]).any(1).float().mean().item()
    return top1, top5


def diversity(images: torch.Tensor, targets: torch.Tensor) -> float:
    """The mean over classes of the mean pairwise distance (RMS per value) between the class's
    images: 0 where every run drew the same image."""
    spreads = []
    for c in sorted(set(targets.tolist())):
        own = images[targets == c].flatten(1)
        if len(own) > 1:
            distances = torch.cdist(own, own) / own.shape[1] ** 0.5
            spreads.append(distances.sum().item() / (len(own) * (len(own) - 1)))
    return float(np.mean(spreads)) if spreads else 0.0


def real_accuracy(model: Classifier, data: Path, top: int = 1) -> float:
    """``model``'s accuracy (top-1 or top-5) on the real images of ``data``."""
    arrays = np.load(data)
    pixels = torch.from_numpy(arrays["images"]).float().div(255).permute(0, 3, 1, 2)
    labels = torch.from_numpy(arrays["labels"]).long()
    chosen = model.log_probabilities(pixels).topk(top, dim=1).indices
    return (chosen == labels[:, None]).any(1).float().mean().item()


def measure(
    name: str, recipe: str, out: Path, source: Classifier, judge: tuple[str, Classifier]
) -> str:
    """One table row: runs >= 0.99 on the source, the judge's top-1 and top-5, diversity."""
    images, targets = identikits(out)
    confidence = source.probabilities(images)[torch.arange(len(images)), targets]
    top1, top5 = calls(judge[1], images, targets)
    return (
        f"| {name} | {recipe} | {int((confidence >= 0.99).sum())}/{len(images)} | "
        f"{judge[0]}: **{top1:.0%}** (top-5 {top5:.0%}) | {diversity(images, targets):.3f} |"
    )


def cifar(folder: Path, runs: int, recipes: list[str], sources: list[str]) -> None:
    """ResNet-20 drawn, judged by ResNet-56, and the reverse (``sources``: which to draw)."""
    root = SHARED / "cifar10"
    shape = Expected(input_shape=ImageShape(3, 32, 32))
    models = {
        name: load_classifier(
            root / f"{name}.torchscript.pt",
            device="cpu",
            preprocessing=IMAGENET_NORMAL,
            trust_code=True,
            expect=shape,
        )
        for name in ("resnet20", "resnet56")
    }
    for name, model in models.items():
        accuracy = real_accuracy(model, root / "test-1000.npz")
        print(f"{name} on the 1,000 real test images: {accuracy:.1%}")
    print("| drawn by | recipe | runs >= 0.99 on it | judge calls its class | diversity |")
    print("|---|---|---|---|---|")
    for name, judge in (("resnet20", "resnet56"), ("resnet56", "resnet20")):
        if name not in sources:
            continue
        flags = ["--model", str(root / f"{name}.torchscript.pt"), "--trust-code"]
        flags += ["--input-shape", "3,32,32", *CIFAR]
        for recipe in recipes:
            out = folder / f"{name}-{recipe}"
            seconds = draw(recipe, flags, out, "0-9", runs)
            row = measure(name, recipe, out, models[name], (judge, models[judge]))
            print(f"{row} {seconds:.0f} s", flush=True)


def imagenet(folder: Path, runs: int, recipes: list[str]) -> None:
    """EfficientNet-Lite0 drawn for every 50th class, judged by the quantized MobileNetV2."""
    root = SHARED / "imagenet"
    names = ["--class-names", f"@{root / 'classes.txt'}"]
    source = load_classifier(
        root / "efficientnet-lite0.torchscript.pt",
        device="cpu",
        preprocessing=Preprocessing(mean=0.5, std=0.5),
        trust_code=True,
        expect=Expected(input_shape=ImageShape(3, 224, 224)),
    )
    # The quantized MobileNetV2 takes a batch of 1: identikit finds so and runs it image by image.
    judge = load_classifier(
        root / "mobilenet-v2-quantized.torchscript.pt",
        device="cpu",
        preprocessing=IMAGENET_NORMAL,
        trust_code=True,
        expect=Expected(input_shape=ImageShape(3, 224, 224)),
    )
    sample = root / "sample-100.npz"
    print(
        f"EfficientNet-Lite0 on 100 real images: top-1 {real_accuracy(source, sample):.0%}; "
        f"MobileNetV2 (quantized) top-1 {real_accuracy(judge, sample):.0%}, "
        f"top-5 {real_accuracy(judge, sample, 5):.0%}"
    )
    classes = ",".join(str(c) for c in range(0, 1000, 50))
    model = ["--model", str(root / "efficientnet-lite0.torchscript.pt"), "--trust-code"]
    model += ["--input-shape", "3,224,224", *EFFICIENTNET, *names]
    for recipe in recipes:
        out = folder / f"efficientnet-{recipe}"
        seconds = draw(recipe, model, out, classes, runs)
        row = measure("efficientnet-lite0", recipe, out, source, ("mobilenet-v2", judge))
        print(f"{row} {seconds:.0f} s (target 15 min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["cifar", "imagenet"])
    parser.add_argument("--runs", type=int, default=None, help="runs a class (10; ImageNet 2)")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweeps in this folder")
    parser.add_argument("--sources", default="resnet20,resnet56", help="CIFAR models to draw")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent (the shared real models are not here)")
        return
    torch.set_num_threads(2)
    recipes = [r for r in args.recipes.split(",") if r]
    with tempfile.TemporaryDirectory() as work:
        folder = args.keep or Path(work)
        folder.mkdir(parents=True, exist_ok=True)
        if "cifar" in args.parts:
            cifar(folder, args.runs or 10, recipes, args.sources.split(","))
        if "imagenet" in args.parts:
            imagenet(folder, args.runs or 2, recipes)


if __name__ == "__main__":
    main()
