"""The batch-norm statistics step, before and after issue 30's speed-up, in one run.

DeepInversion's term (Yin et al., CVPR 2020) reads the per-channel mean and variance of every
batch-norm layer's input. On EfficientNet-Lite0 (49 layers, 40 images at 224 x 224, a 2-core
AMD EPYC) one ``Classifier.value_and_grad_with_statistics`` took 4.6 s, about 45% of it in
``torch.var_mean`` forward and backward, and 0.8 s in the interpreter's Clip (ReLU6) as a
clamp between tensors.

1. the channel statistics, forward and backward, on the shapes of such layers: the copy of the
   old function below (``torch.var_mean``) against the project's
   (:mod:`identikit.models.channel_statistics`), with the new one's largest relative error
   against float64 on inputs far from zero (randn x 3 + 100).
2. Clip between 0 and 6 on a 40 x 96 x 112 x 112 channels-last tensor, forward and backward:
   ``torch.clamp`` between tensors (the old operator) against the interpreter's.
3. One whole step on EfficientNet-Lite0 (../shared/real-models, TorchScript, tapped through
   the ONNX interpreter) at 40 x 3 x 224 x 224 and 40 x 3 x 112 x 112, old and new in turns
   (the old: this file's copies put in place of the project's for the call). Skipped, saying
   why, where the shared folder is absent.

Times are the best of ``--repeats`` (the machine is shared); ratios old / new. Target: the 224
step under 3 s. About 1 to 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch

from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.models import batch_norm_taps
from identikit.models.info import Expected
from identikit.models.onnx_ops import registry
from identikit.models.onnx_ops.registry import Inputs, Node, Outputs, optional, required
from identikit.models.preprocessing import Preprocessing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-models" / "imagenet"
MODEL = SHARED / "efficientnet-lite0.torchscript.pt"
LAYER_SHAPES = [(40, 32, 112, 112), (40, 96, 56, 56), (40, 240, 28, 28), (40, 1280, 7, 7)]


def old_channel_statistics(
    x: torch.Tensor, groups: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The function as it was before issue 30's speed-up (commit 7285f79), the baseline."""
    dims = [0, *range(2, x.dim())]
    if groups is None:
        var, mean = torch.var_mean(x, dims, correction=0)
        return mean.unsqueeze(0), var.unsqueeze(0)
    rows, channels = x.shape[:2]
    flat = x.reshape(rows, channels, -1)
    counts = torch.bincount(groups, minlength=int(groups.max()) + 1)
    sizes = (counts * flat.shape[2]).to(x.dtype).unsqueeze(1)
    empty = x.new_zeros(len(counts), channels)
    mean = empty.index_add(0, groups, flat.sum(2)) / sizes
    centred = flat - mean[groups].unsqueeze(2)
    return mean, empty.index_add(0, groups, centred.square().sum(2)) / sizes


def old_clip(node: Node, inputs: Inputs) -> Outputs:
    """The interpreter's Clip before the speed-up (opset 11 on: bounds as inputs)."""
    x = required(node, inputs, 0)
    low, high = optional(inputs, 1), optional(inputs, 2)
    return x if low is None and high is None else torch.clamp(x, low, high)


@contextlib.contextmanager
def baseline() -> Iterator[None]:
    """The old channel_statistics and Clip in place of the project's for the block (the
    module's recorder and the interpreter look both up by name at each call)."""
    new_statistics, new_clip = batch_norm_taps.channel_moments, registry.OPERATORS["Clip"]
    batch_norm_taps.channel_moments = old_channel_statistics
    registry.OPERATORS["Clip"] = old_clip
    try:
        yield
    finally:
        batch_norm_taps.channel_moments = new_statistics
        registry.OPERATORS["Clip"] = new_clip


def best(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (seconds), after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def statistics_pass(
    function: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> Callable[[torch.Tensor, torch.Tensor | None], None]:
    """Forward and backward of ``function`` on a batch, as the term uses it."""

    def run(x: torch.Tensor, groups: torch.Tensor | None) -> None:
        leaf = x.detach().requires_grad_()
        mean, var = function(leaf, groups)
        torch.autograd.backward((mean, var), (torch.ones_like(mean), torch.ones_like(var)))

    return run


def relative_error(x: torch.Tensor, groups: torch.Tensor | None) -> float:
    """The new function's largest relative error against float64, mean and variance."""
    mean, var = batch_norm_taps.channel_moments(x, groups)
    mean64, var64 = old_channel_statistics(x.double(), groups)
    errors = [(mean.double() - mean64).abs() / mean64.abs(), (var.double() - var64).abs() / var64]
    return max(float(e.max()) for e in errors)


def statistics_table(repeats: int) -> None:
    print("channel_statistics, forward + backward (ms)")
    print(f"{'input':34} {'old':>8} {'new':>8} {'old/new':>8} {'rel. error':>11}")
    old, new = (
        statistics_pass(old_channel_statistics),
        statistics_pass(batch_norm_taps.channel_moments),
    )
    generator = torch.Generator().manual_seed(0)
    cases: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
    for shape in LAYER_SHAPES:
        x = torch.randn(shape, generator=generator) * 3 + 100
        cases.append((f"{shape} channels last", x.to(memory_format=torch.channels_last), None))
    x = torch.randn(LAYER_SHAPES[0], generator=generator) * 3 + 100
    cases.append((f"{LAYER_SHAPES[0]} contiguous", x, None))
    groups = torch.arange(40) % 10
    cases.append(
        ("same, channels last, 10 groups", x.to(memory_format=torch.channels_last), groups)
    )
    cases.append(
        ("(4096, 1280), 8 groups", torch.randn(4096, 1280) * 3 + 100, torch.arange(4096) % 8)
    )
    for name, x_case, group_case in cases:
        before = best(partial(old, x_case, group_case), repeats)
        after = best(partial(new, x_case, group_case), repeats)
        print(
            f"{name:34} {before * 1e3:8.1f} {after * 1e3:8.1f} {before / after:8.2f} "
            f"{relative_error(x_case, group_case):11.1e}"
        )


def clip_line(repeats: int) -> None:
    x = (torch.randn(40, 96, 112, 112) * 4).to(memory_format=torch.channels_last)
    low, high = torch.tensor(0.0), torch.tensor(6.0)
    node = Node("Clip", "clip", 13, ("x", "min", "max"), ("y",))

    def step(clip: Callable[[Node, Inputs], Outputs]) -> Callable[[], None]:
        def run() -> None:
            leaf = x.detach().requires_grad_()
            out = clip(node, [leaf, low, high])
            assert isinstance(out, torch.Tensor)
            torch.autograd.backward(out, torch.ones_like(out))

        return run

    before = best(step(old_clip), repeats)
    after = best(step(registry.OPERATORS["Clip"]), repeats)
    print(
        f"\nClip 0..6, (40, 96, 112, 112) channels last, forward + backward: old "
        f"{before * 1e3:.0f} ms, new {after * 1e3:.0f} ms, old/new {before / after:.2f}"
    )


def step_table(repeats: int) -> None:
    print("\nEfficientNet-Lite0, one value_and_grad_with_statistics (s)")
    if not MODEL.exists():
        print(f"skipped: {MODEL} is absent (the shared real models are not here)")
        return
    for side in (224, 112):
        model = load(side)
        images = torch.rand(40, 3, side, side, generator=torch.Generator().manual_seed(0))
        run = partial(model.value_and_grad_with_statistics, images, objective, 1.0)
        with baseline():
            before = best(run, repeats)
        after = best(run, repeats)
        with baseline():
            old_step = model.value_and_grad_with_statistics(images, objective, 1.0)
        new_step = model.value_and_grad_with_statistics(images, objective, 1.0)
        difference = float((old_step.grads - new_step.grads).abs().max())
        scale = float(old_step.grads.abs().max())
        print(
            f"40 x 3 x {side} x {side}: old {before:.2f}, new {after:.2f}, old/new "
            f"{before / after:.2f}; gradients differ by {difference / scale:.1e} of their largest"
        )


def objective(x: torch.Tensor, log_probabilities: torch.Tensor, rows: slice) -> torch.Tensor:
    """The log-probability of class 0, as a search for class 0 would climb it."""
    return log_probabilities[:, 0]


def load(side: int) -> Classifier:
    classifier = load_classifier(
        MODEL,
        device="cpu",
        preprocessing=Preprocessing(mean=0.5, std=0.5),
        trust_code=True,
        expect=Expected(input_shape=ImageShape(3, side, side)),
    )
    classifier.batch_norm_layers()
    return classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls each (default 2)")
    parser.add_argument(
        "--threads", type=int, help="torch's threads (default: torch's own, one a core)"
    )
    parser.add_argument("--steps-only", action="store_true", help="only part 3, the whole step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not args.steps_only:
        statistics_table(args.repeats)
        clip_line(args.repeats)
    step_table(args.repeats)


if __name__ == "__main__":
    main()
