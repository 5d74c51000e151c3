"""The exact ceiling of a linear softmax model: the highest probability any image can get.

For logits z = W x + b, the target's log-probability z_t - logsumexp(z) is concave in x
(logsumexp is convex, the logits affine), so maximising it over the pixel box [0, 1]^d is a
convex problem (Boyd & Vandenberghe 2004, section 3.1.5). It is solved here by projected Adam
ascent; the Frank-Wolfe duality gap (Jaggi 2013), max over the box of grad . (s - x), bounds how
far the answer can be from the true optimum, so the ceiling is reported with a certificate:
``log_probability <= optimum <= log_probability + gap``.

``write_ceiling`` records it in a folder: ``ceiling.json`` (per class the shortfall, the gap and
whether 0.99 and 0.9999 are within reach, with the model's name and SHA-256, written and read
back by :mod:`identikit.sweeps.result_files`) and ``ceiling.png`` (the best images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from identikit.base.atomic import atomic_write_bytes
from identikit.base.errors import IdentikitError
from identikit.base.figures import identikit_grid
from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.sweeps.result_files import CEILING_REACH, write_ceiling_record


@dataclass
class Ceiling:
    """The best image for each class and how good it provably is (float64).

    Near certainty probabilities round to 1, so the distance from certainty, 1 - p, is kept
    separately as ``shortfall``.
    """

    images: torch.Tensor  # (classes, d) in [0, 1]
    log_probability: torch.Tensor  # (classes,) reached
    gap: torch.Tensor  # (classes,) optimum <= log_probability + gap
    shortfall: torch.Tensor  # (classes,) 1 - p of the images found, computed without rounding

    @property
    def probability(self) -> torch.Tensor:
        return self.log_probability.exp()


def linear_layer(model: nn.Module) -> nn.Linear:
    """The model's single linear layer; an error for models that are not one linear map."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    others = [
        m
        for m in model.modules()
        if len(list(m.children())) == 0 and not isinstance(m, (nn.Linear, nn.Flatten))
    ]
    if len(layers) != 1 or others:
        raise IdentikitError("the exact ceiling exists only for a single linear layer (softmax)")
    return layers[0]


def _gap(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # max over s in [0,1]^d of grad . (s - x): s_i = 1 where grad_i > 0, else 0.
    return (grad.clamp(min=0) * (1 - x) + (-grad).clamp(min=0) * x).sum(1)


def linear_ceiling(
    weight: torch.Tensor, bias: torch.Tensor, *, steps: int = 3000, lr: float = 0.05
) -> Ceiling:
    """Maximise softmax(W x + b)_t over x in [0, 1]^d for every class t at once."""
    weight, bias = weight.detach().double(), bias.detach().double()
    classes, dims = weight.shape
    targets = torch.arange(classes)
    x = torch.full((classes, dims), 0.5, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([x], lr=lr)

    def objective(images: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(images @ weight.T + bias, dim=1)
        return logp[targets, targets]

    for _ in range(steps):
        optimiser.zero_grad()
        (-objective(x).sum()).backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    value = objective(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    gap = _gap(grad, x.detach())
    with torch.no_grad():
        # 1 - p_t = sum of the other classes' probabilities, from their log-sum-exp: exact even
        # where p_t itself rounds to 1.
        logits = x @ weight.T + bias
        others = logits.masked_fill(torch.eye(classes, dtype=torch.bool), float("-inf"))
        shortfall = (others.logsumexp(1) - logits.logsumexp(1)).exp()
    return Ceiling(x.detach().float(), value.detach(), gap, shortfall)


def model_ceiling(model: nn.Module) -> Ceiling:
    """The ceiling of a model that is one linear layer on the flattened pixels."""
    layer = linear_layer(model)
    return linear_ceiling(layer.weight, layer.bias)


def ceiling_rows(ceiling: Ceiling) -> dict[str, dict[str, Any]]:
    """Per class: the shortfall 1 - p, the certified gap, and which targets are within reach."""
    rows: dict[str, dict[str, Any]] = {}
    pairs = zip(ceiling.shortfall.tolist(), ceiling.gap.tolist(), strict=True)
    for c, (shortfall, gap) in enumerate(pairs):
        rows[str(c)] = {"shortfall": shortfall, "gap": gap}
        rows[str(c)].update({key: shortfall <= most for key, most in CEILING_REACH.items()})
    return rows


def write_ceiling(
    out: str | os.PathLike[str],
    ceiling: Ceiling,
    *,
    name: str,
    sha256: str,
    shape: ImageShape = MNIST_SHAPE,
) -> None:
    """Write ``ceiling.json`` and ``ceiling.png`` into ``out``, each atomically; ``shape`` is
    the image shape of the model (any C x H x W: a checkpoint records it), whose pixels the
    linear layer reads flattened."""
    folder = Path(out)
    if shape.size != ceiling.images.shape[1]:
        raise IdentikitError(
            f"the linear model reads {ceiling.images.shape[1]} values, not images of {shape} "
            f"({shape.size} values)"
        )
    images = ceiling.images.view(-1, *shape.dims).numpy()
    # Grey images are drawn as (N, H, W), as every grey identikit is; colour ones channel-first.
    drawn = images[:, 0] if shape.channels == 1 else images
    atomic_write_bytes(
        folder / "ceiling.png",
        identikit_grid(
            drawn,
            list(range(len(images))),
            ceiling.probability.tolist(),
            title=f"{name}: exact optimum of the linear model",
        ),
    )
    write_ceiling_record(folder, name=name, sha256=sha256, rows=ceiling_rows(ceiling))
