"""Gradients through an ONNX file (issue 29, part 1): the CIFAR-10 ResNet-20 of the shared real
models, exported to ONNX, searched by gradient through identikit's ONNX interpreter.

1. The ResNet-20's TorchScript file (../shared/real-models/cifar10/resnet20.torchscript.pt,
   ImageNet mean and std, logits; read its README) is exported to ONNX: by `identikit export`
   where that takes TorchScript, else with torch.onnx.export (the exporter identikit uses).
2. The interpreter's logits against ONNX Runtime's on the 1,000 real test images
   (test-1000.npz): the largest difference, and both accuracies.
3. `identikit search --strategy gradient` through the ONNX file, 10 classes x 2 runs, and the
   same search through the TorchScript file: every ONNX run re-scored by ONNX Runtime (target
   >= 0.99), and the two searches' identikits compared (target: within 1e-4).
4. EfficientNet-Lite0 (1,000 ImageNet classes, 224 x 224) exported to ONNX with its class
   names: `identikit search` with no class flag plans all 1,000 classes and says so (then is
   paused); `--classes 0,50,...,950` searched by gradient, 1 run each, re-scored by ONNX
   Runtime (target: all >= 0.99 within 10 minutes), names in the table and the report.
   `--cifar-only` leaves this part out.

Skips, saying why, where the shared folder is absent. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.models.export import onnx_bytes
from identikit.models.info import Expected
from identikit.models.onnx_graph import load_graph
from identikit.models.preprocessing import Preprocessing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-models" / "cifar10"
IMAGENET = SHARED.parent / "imagenet"
MEAN, STD = "0.485,0.456,0.406", "0.229,0.224,0.225"
CONVENTIONS = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def identikit(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own."""
    command = [sys.executable, "-m", "identikit", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def export(torchscript: Path, out: Path) -> tuple[str, Preprocessing]:
    """The ONNX file of the TorchScript model: how it was made, and the conventions it takes
    (identikit's own, pixels in [0, 1], where `identikit export` wrote it with the mean and
    std built in; else the TorchScript model's)."""
    made = identikit(
        *("export", "--model", str(torchscript), "--out", str(out), "--trust-code"),
        *("--input-shape", "3,32,32", "--mean", MEAN, "--std", STD),
    )
    if made.returncode == 0 and out.is_file():
        return "identikit export", Preprocessing()
    module = torch.jit.load(str(torchscript), map_location="cpu")  # type: ignore[no-untyped-call]
    out.write_bytes(onnx_bytes(module, torch.rand(2, 3, 32, 32)))
    why = (made.stderr.strip().splitlines() or ["no output"])[-1]
    return f"torch.onnx.export (identikit export said: {why})", CONVENTIONS


def flags(conventions: Preprocessing) -> list[str]:
    """The --mean and --std a model of ``conventions`` is loaded with (none: identikit's)."""
    return [] if conventions.is_identity else ["--mean", MEAN, "--std", STD]


def compare_outputs(onnx_file: Path, conventions: Preprocessing) -> None:
    """The interpreter's logits against ONNX Runtime's on the real test images."""
    data = np.load(SHARED / "test-1000.npz")
    pixels = torch.from_numpy(data["images"]).float().div(255).permute(0, 3, 1, 2)
    labels = torch.from_numpy(data["labels"]).long()
    inputs = conventions.to_model(pixels)
    graph = load_graph(onnx_file.read_bytes(), onnx_file.name)
    runtime = load_classifier(onnx_file, device="cpu").reference
    start = time.perf_counter()
    with torch.no_grad():
        ours = torch.cat([graph(inputs[i : i + 250]) for i in range(0, len(inputs), 250)])
    seconds = time.perf_counter() - start
    theirs = runtime(inputs)
    difference = (ours - theirs).abs().max().item()
    accuracy = [(o.argmax(1) == labels).float().mean().item() for o in (ours, theirs)]
    print(f"outputs on {len(inputs):,} real CIFAR-10 test images: max |interpreter - ONNX Runtime|")
    print(f"  {difference:.2e} (target 1e-4); accuracy {accuracy[0]:.1%} vs {accuracy[1]:.1%}")
    print(f"  interpreter forward: {len(inputs) / seconds:,.0f} images/s")


def search(model: Path, out: Path, *extra: str) -> float:
    """A gradient search of 10 classes x 2 runs; its seconds."""
    start = time.perf_counter()
    done = identikit(
        *("search", "--model", str(model), "--out", str(out), "--strategy", "gradient"),
        *("--digits", "0-9", "--runs", "2", "--seed", "0", "--max-queries", "4000"),
        *("--device", "cpu", "--no-progress", *extra),
    )
    if done.returncode != 0:
        raise SystemExit(f"search of {model.name} failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def compare_searches(
    onnx_file: Path, conventions: Preprocessing, torchscript: Path, folder: Path
) -> None:
    """The ONNX search re-scored by ONNX Runtime, and against the TorchScript search."""
    seconds = search(onnx_file, folder / "onnx", *flags(conventions))
    search(
        torchscript,
        folder / "ts",
        *("--trust-code", "--input-shape", "3,32,32", *flags(CONVENTIONS)),
    )
    found = np.load(folder / "onnx" / "identikits.npz")
    images = torch.from_numpy(found["images"]).float()
    if images.dim() == 4 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    key = "digits" if "digits" in found.files else "classes"  # the targets' older name first
    targets = torch.from_numpy(found[key]).long()
    runtime = load_classifier(onnx_file, device="cpu", preprocessing=conventions)
    confidences = runtime.probabilities(images)[torch.arange(len(images)), targets]
    reached = int((confidences >= 0.99).sum())
    print(f"gradient search through the ONNX file: {len(images)} runs in {seconds:.0f} s;")
    print(f"  re-scored by ONNX Runtime: {reached}/{len(images)} >= 0.99 (target all),")
    print(f"  lowest {confidences.min().item():.4f}")
    other = np.load(folder / "ts" / "identikits.npz")["images"]
    per_run = np.abs(found["images"].astype(np.float64) - other).reshape(len(other), -1).max(1)
    close = int((per_run <= 1e-4).sum())
    print(f"identikits through ONNX vs through TorchScript: {close}/{len(per_run)} runs within")
    median = float(np.median(per_run))
    print(f"  1e-4 (target all); max |difference| {per_run.max():.2e}, median {median:.1e}")


def compare_gradients(onnx_file: Path, conventions: Preprocessing, torchscript: Path) -> None:
    """value_and_grad through the interpreter against TorchScript's, at random images: where
    the searches part, it is float32 rounding that Adam's sign-like steps amplify."""
    through_onnx = load_classifier(onnx_file, device="cpu", preprocessing=conventions)
    through_ts = load_classifier(
        torchscript,
        device="cpu",
        preprocessing=CONVENTIONS,
        trust_code=True,
        expect=Expected(input_shape=ImageShape(3, 32, 32)),
    )
    images = torch.rand(20, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(20) % 10

    def objective(x: torch.Tensor, log_p: torch.Tensor, rows: slice) -> torch.Tensor:
        return log_p[torch.arange(len(x)), targets[rows]]

    values, grads = through_onnx.value_and_grad(images, objective)
    ts_values, ts_grads = through_ts.value_and_grad(images, objective)
    per_image = (grads - ts_grads).abs().flatten(1).max(1).values
    close = int((per_image <= 1e-4).sum())
    print("value_and_grad at 20 random images, interpreter vs TorchScript (float32): values")
    print(f"  within {(values - ts_values).abs().max().item():.1e}; gradients of {close}/20")
    print(f"  images within 1e-4 (max {per_image.max().item():.1e}; largest gradient")
    in_float64 = _float64(onnx_file, conventions, torchscript)
    print(f"  {ts_grads.abs().max().item():.2f}); in float64: {in_float64:.1e}")


def _float64(onnx_file: Path, conventions: Preprocessing, torchscript: Path) -> float:
    """The largest difference of the two models' input gradients in float64, where float32's
    rounding near a ReLU's kink cannot tell them apart."""
    graph = load_graph(onnx_file.read_bytes(), onnx_file.name).double()
    module = torch.jit.load(str(torchscript), map_location="cpu").double()  # type: ignore[no-untyped-call]
    images = torch.rand(20, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grads = []
    for model, taking in ((graph, conventions), (module, CONVENTIONS)):
        x = images.double().requires_grad_(True)
        chosen = torch.log_softmax(model(taking.to_model(x)), 1)
        chosen = chosen[torch.arange(20), torch.arange(20) % 10]
        grads.append(torch.autograd.grad(chosen.sum(), x)[0])
    return float((grads[0] - grads[1]).abs().max())


def export_imagenet(torchscript: Path, out: Path) -> tuple[str, list[str]]:
    """EfficientNet-Lite0's ONNX file, in identikit's convention with its class names where
    `identikit export` writes them (else torch.onnx.export's, taking the flags): how it was
    made, and the flags the commands then need."""
    names = ["--class-names", f"@{IMAGENET / 'classes.txt'}"]
    made = identikit(
        *("export", "--model", str(torchscript), "--out", str(out), "--trust-code"),
        *("--input-shape", "3,224,224", "--mean", "0.5", "--std", "0.5", *names),
    )
    if made.returncode == 0 and out.is_file():
        return "identikit export", []
    module = torch.jit.load(str(torchscript), map_location="cpu")  # type: ignore[no-untyped-call]
    out.write_bytes(onnx_bytes(module, torch.rand(2, 3, 224, 224)))
    why = (made.stderr.strip().splitlines() or ["no output"])[-1]
    return f"torch.onnx.export (identikit export said: {why})", [
        "--mean",
        "0.5",
        "--std",
        "0.5",
        *names,
    ]


def planned_line(model: Path, out: Path, flags_: list[str]) -> str:
    """What `identikit search` with no class flag says before it starts: the line that plans
    every class. The search is paused (SIGINT) as soon as it has said it."""
    command = [sys.executable, "-m", "identikit", "search", "--model", str(model)]
    command += ["--out", str(out), "--strategy", "gradient", "--runs", "1", "--no-progress"]
    process = subprocess.Popen([*command, *flags_], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    said = ""
    for line in process.stderr:
        if "sweep of" in line:
            said = line.strip()
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    return said


def imagenet(folder: Path) -> None:
    """EfficientNet-Lite0 through ONNX: every class planned by default, and 20 classes (every
    50th) searched by gradient, re-scored by ONNX Runtime, with their names."""
    torchscript = IMAGENET / "efficientnet-lite0.torchscript.pt"
    onnx_file = folder / "efficientnet-lite0.onnx"
    how, extra = export_imagenet(torchscript, onnx_file)
    print(f"EfficientNet-Lite0 exported to ONNX by {how}")
    print(f"  with no class flag: {planned_line(onnx_file, folder / 'all', extra)}")
    classes = ",".join(str(c) for c in range(0, 1000, 50))
    out = folder / "every-50th"
    start = time.perf_counter()
    done = identikit(
        *("search", "--model", str(onnx_file), "--out", str(out), "--strategy", "gradient"),
        *("--classes", classes, "--runs", "1", "--seed", "0", "--no-progress", *extra),
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"search of {onnx_file.name} failed: {done.stderr.strip()}")
    found = np.load(out / "identikits.npz")
    images = torch.from_numpy(found["images"]).float()
    if images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    key = "digits" if "digits" in found.files else "classes"
    targets = torch.from_numpy(found[key]).long()
    conventions = Preprocessing() if not extra else Preprocessing(mean=0.5, std=0.5)
    runtime = load_classifier(onnx_file, device="cpu", preprocessing=conventions)
    confidences = runtime.probabilities(images)[torch.arange(len(images)), targets]
    reached = int((confidences >= 0.99).sum())
    print(f"  --classes {classes[:14]}...,950 (20 classes x 1 run) by gradient: {seconds:.0f} s")
    print(f"  (target 10 min); re-scored by ONNX Runtime {reached}/{len(images)} >= 0.99")
    print(f"  (lowest {confidences.min().item():.4f}); the table's first rows:")
    for line in done.stdout.splitlines()[:4]:
        print(f"    {line}")
    report = identikit("report", str(out))
    page = (out / "report.html").read_text(encoding="utf-8") if report.returncode == 0 else ""
    named = sum(name in page for name in ("tench", "black swan", "orange"))
    print(f"  report: {'written' if page else 'failed'}; names of 3 classes checked: {named}/3")


def main() -> None:
    torchscript = SHARED / "resnet20.torchscript.pt"
    if not torchscript.is_file():
        print(f"skipped: {torchscript} is absent (the shared real models are not here)")
        return
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        onnx_file = folder / "resnet20.onnx"
        how, conventions = export(torchscript, onnx_file)
        print(f"ResNet-20 exported to ONNX by {how}")
        compare_outputs(onnx_file, conventions)
        compare_gradients(onnx_file, conventions, torchscript)
        compare_searches(onnx_file, conventions, torchscript, folder)
        if "--cifar-only" not in sys.argv:
            imagenet(folder)


if __name__ == "__main__":
    main()
