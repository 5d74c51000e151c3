"""The settings of one training run; each architecture registers its own defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Adam with a one-cycle learning-rate schedule (Smith & Topin 2017).

    ``lr`` is the peak rate of the cycle; ``channels_last`` stores activations in NHWC, which
    PyTorch's CPU convolutions run faster. ``precision`` ``bf16`` computes the forward and
    backward passes in bfloat16 under autocast (weights, optimiser and loss stay float32;
    Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training"); ``auto`` takes
    bf16 where the device has bfloat16 instructions, fp32 elsewhere.
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    channels_last: bool = False
    precision: str = "fp32"
