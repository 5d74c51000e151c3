"""Fitting a model: Adam under a one-cycle learning-rate schedule (Smith & Topin 2017,
"Super-Convergence") with cross-entropy loss, in float32 or under bfloat16 autocast, the batches
drawn by a seeded generator so that the same seed gives the same model on CPU.

Training that diverges (a loss or a weight that is no longer a finite number, as ``--lr 1e308``
makes at once) stops with a one-line error: nan weights score every image alike, and a model
saved with them would search to nothing."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from identikit.base.errors import IdentikitError
from identikit.engines.precision import bf16_supported, check_precision
from identikit.models.training_config import TrainConfig
from identikit.training.evaluation import to_pixels


def one_cycle(total_steps: int, warmup: float = 0.25) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up to 1, then cosine decay to 0.

    The one-cycle policy of Smith & Topin (2017); unlike torch's ``OneCycleLR`` it is defined
    for any number of steps, down to one.
    """
    ramp = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = (step - ramp) / max(1, total_steps - ramp)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def training_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: what ``precision`` (auto, fp32 or bf16) means on ``device``."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    check_precision(precision, device)
    return precision


@dataclass(frozen=True)
class FitHooks:
    """What a caller sees of fitting: a progress bar on stderr (``progress``), and
    ``on_epoch(epoch, mean_loss)`` after each epoch (e.g. to evaluate)."""

    progress: bool = True
    on_epoch: Callable[[int, float], None] | None = field(default=None, compare=False)


def fit(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    *,
    seed: int = 0,
    hooks: FitHooks | None = None,
) -> list[float]:
    """Train ``model`` in place, on the device it is on, on uint8 ``images`` (N, C, H, W) or
    (N, H, W); return the mean loss of each epoch.

    Batches are drawn by a generator seeded with ``seed``, so the same seed gives the same
    model on CPU. A loss or weight that stops being finite is a one-line error (see
    :class:`Diverged`), raised before ``hooks.on_epoch`` hears of the epoch.
    """
    # ``config`` checked its own settings when it was made (see TrainConfig).
    hooks = hooks or FitHooks()
    device = next(model.parameters()).device
    bf16 = training_precision(config.precision, device) == "bf16"
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]
    x_all, y_all = to_pixels(images, device), torch.from_numpy(labels.astype(np.int64)).to(device)
    steps_per_epoch = -(-len(x_all) // config.batch_size)
    # On a GPU, Adam's update of every parameter as one kernel (fused) rather than a few per
    # parameter: a small model's step is bound by kernel launches there.
    optimiser = torch.optim.Adam(
        model.parameters(),
        lr=config.lr,
        weight_decay=config.weight_decay,
        fused=device.type == "cuda",
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, one_cycle(config.epochs * steps_per_epoch)
    )
    step = _step(model, optimiser, schedule, bf16=bf16)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_all), generator=generator).to(device)
        batches = (
            (x_all[index].contiguous(memory_format=memory_format), y_all[index])
            for index in torch.split(order, config.batch_size)
        )
        try:
            total = _epoch(
                step, batches, steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", hooks=hooks
            )
        except _NonFinite as exc:
            raise Diverged(f"the loss became {exc.value} in epoch {epoch}", config) from None
        _check_weights(model, config, epoch)
        losses.append(total / steps_per_epoch)
        if hooks.on_epoch is not None:
            hooks.on_epoch(epoch, losses[-1])
    model.eval()
    return losses


class Diverged(IdentikitError):
    """Training that diverged: its loss or weights are no longer finite numbers."""

    def __init__(self, what: str, config: TrainConfig) -> None:
        super().__init__(
            f"training diverged: {what} (--lr {config.lr:g}); nothing was saved: train again "
            "with a lower --lr"
        )


class _NonFinite(Exception):
    """A loss that is not a finite number, met while an epoch's losses were read."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


def _check_weights(model: nn.Module, config: TrainConfig, epoch: int) -> None:
    """Refuse weights that are no longer finite: the last step of an epoch can make them so
    while the loss it returned, computed before the step, still was."""
    for name, parameter in model.named_parameters():
        if not bool(torch.isfinite(parameter).all()):
            raise Diverged(f"weight {name} is not finite after epoch {epoch}", config)


# One optimisation step on a batch (inputs, labels); it returns the batch's loss, on the device.
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Losses are read from the device every this many steps (and at an epoch's end), each read
# waiting for the device to finish: a GPU then runs ahead of Python rather than idling at
# every step. The same step shows the running loss.
READ_EVERY = 20


def _step(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    *,
    bf16: bool,
) -> Step:
    """One optimisation step on a batch (inputs, labels); it returns the batch's loss, left on
    the device."""

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        schedule.step()
        return loss.detach()

    return step


def _epoch(
    step: Step,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    *,
    desc: str,
    hooks: FitHooks,
) -> float:
    """The summed loss of ``step`` over ``steps`` batches, with a progress bar showing a
    running mean of the loss. The losses are read every READ_EVERY steps and summed in order,
    so the sum is the one a read after every step gives."""
    bar = tqdm(
        range(steps),
        desc=desc,
        disable=not hooks.progress,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    losses = _Losses()
    try:
        for index, (x, y) in zip(bar, batches, strict=False):
            losses.pending.append(step(x, y))
            if index % READ_EVERY == 0:
                bar.set_postfix(loss=f"{losses.read():.4f}", refresh=False)
        losses.read()
    finally:
        # Cleared before anything else is printed: an error line (or Ctrl-C's) would
        # otherwise land on the bar's line.
        bar.close()
    return losses.total


@dataclass
class _Losses:
    """An epoch's losses: those still on the device, their sum and running mean so far."""

    pending: list[torch.Tensor] = field(default_factory=list)
    total: float = 0.0
    running: float | None = None

    def read(self) -> float:
        """Add the pending losses to the sum and the running mean, in order; the running mean
        (one read: it waits for the device)."""
        if self.pending:
            for value in torch.stack(self.pending).tolist():
                if not math.isfinite(value):
                    raise _NonFinite(value)
                self.total += value
                self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
            self.pending.clear()
        return self.running if self.running is not None else float("nan")
