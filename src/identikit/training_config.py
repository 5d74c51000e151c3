"""The settings of one training run; each architecture registers its own defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Adam with a one-cycle learning-rate schedule (Smith & Topin 2017).

    ``lr`` is the peak rate of the cycle; ``channels_last`` stores activations in NHWC, which
    PyTorch's CPU convolutions run faster.
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    channels_last: bool = False
