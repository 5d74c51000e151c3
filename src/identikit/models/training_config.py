"""The settings of one training run; each architecture registers its own defaults."""

from __future__ import annotations

from dataclasses import dataclass

from identikit.base.errors import IdentikitError
from identikit.base.values import is_finite, is_whole

# The largest peak learning rate taken: Adam moves every weight by about the rate at each step
# (Kingma and Ba 2015, section 2.1), so above 1 each jumps further than its own scale; far
# above, the step overflows float32 inside the optimiser (--lr 1e308 failed so).
MAX_LR = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Adam with a one-cycle learning-rate schedule (Smith & Topin 2017).

    ``lr`` is the peak rate of the cycle; ``channels_last`` stores activations in NHWC, which
    PyTorch's CPU convolutions run faster. ``precision`` ``bf16`` computes the forward and
    backward passes in bfloat16 under autocast (weights, optimiser and loss stay float32;
    Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training"); ``auto`` takes
    bf16 where the device has bfloat16 instructions, fp32 elsewhere.

    Every config is checked when made (``dataclasses.replace`` makes a new one), so a wrong
    setting is refused before any data is read, not after an epoch: a nan learning rate would
    otherwise train to nan weights, or fail deep inside the optimiser.
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    channels_last: bool = False
    precision: str = "fp32"
    # CPU threads to train with (None: PyTorch's own count). A tiny model's batches are too
    # small to split: the linear model trains in 2-3 s on one thread whether or not another
    # process shares the CPU, and in 1.8 s on two idle cores but 6.5-7 s with one core busy.
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not is_whole(value) or value < 1:
                raise IdentikitError(f"{_flag(name)} must be a whole number >= 1, got {value!r}")
        if self.threads is not None and (not is_whole(self.threads) or self.threads < 1):
            raise IdentikitError(f"threads must be a whole number >= 1, got {self.threads!r}")
        if not is_finite(self.lr) or not 0 < self.lr <= MAX_LR:
            raise IdentikitError(
                f"--lr must be a finite number in (0, {MAX_LR:g}], got {self.lr!r}"
            )
        if not is_finite(self.weight_decay) or self.weight_decay < 0:
            raise IdentikitError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
