"""Adam's update direction, per run (Kingma & Ba 2015, "Adam: A Method for Stochastic
Optimization"), for the strategies that ascend a gradient with it."""

from __future__ import annotations

import torch

# Adam's moment decay rates and its denominator's guard (the paper's defaults).
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def adam_step(memory: dict[str, torch.Tensor], gradient: torch.Tensor, lr: float) -> torch.Tensor:
    """Every run's Adam step up ``gradient`` (runs, ...), lr m / (sqrt(v) + epsilon) with the
    bias-corrected moments; the moments ``m``, ``v`` and step counts ``t`` (runs,) in
    ``memory`` are replaced by their updates."""
    t = memory["t"] + 1
    m = BETA1 * memory["m"] + (1 - BETA1) * gradient
    v = BETA2 * memory["v"] + (1 - BETA2) * gradient.pow(2)
    per_run = (-1,) + (1,) * (m.dim() - 1)  # the parameters need not be images
    bias_m = (1 - BETA1 ** t.double()).float().view(per_run)
    bias_v = (1 - BETA2 ** t.double()).float().view(per_run)
    memory.update(m=m, v=v, t=t)
    # lr times m first, as identikit's gradient ascent always has: its sweeps stay bit for bit.
    return lr * (m / bias_m) / ((v / bias_v).sqrt() + EPSILON)
