"""The Classifier: the one thing a search strategy sees of a model.

It maps pixel images in [0, 1], shape (N, 1, 28, 28), to class (log-)probabilities, scores them
in chunks sized for the hardware under ``torch.inference_mode``, and counts every image it scores
(``queries``), so that every strategy is compared on the same meter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from identikit.device import resolve_device
from identikit.errors import IdentikitError
from identikit.models.checkpoint import file_sha256, load_checkpoint

# Images per forward pass. On a 2-core CPU the tutorial CNN scores fastest at about 128 images
# per batch in channels_last layout (6,400 images/s, against 4,000 at 500: larger batches spill
# the caches); GPUs want thousands.
CPU_CHUNK = 128
CUDA_CHUNK = 8192


class Classifier:
    """A torch module that returns logits, wrapped as a query-counting probability oracle.

    Args:
        module: maps pixels in [0, 1], shape (N, 1, 28, 28), to logits (N, classes).
        device: where to run it.
        chunk_size: images per forward pass (default: 500 on CPU, 8192 on CUDA).
        name: how results and messages refer to the model.
        sha256: hash of the model file, recorded in results.
        classes: the number of classes the model must return, when known.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        device: torch.device | str = "cpu",
        chunk_size: int | None = None,
        name: str = "model",
        sha256: str | None = None,
        classes: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        if self.device.type == "cpu":
            # NHWC convolutions are about 1.5x faster on CPU; layers without 4-D weights ignore it.
            self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.chunk_size = chunk_size or (CUDA_CHUNK if self.device.type == "cuda" else CPU_CHUNK)
        self.name = name
        self.sha256 = sha256
        self.queries = 0
        self.num_classes = self._probe_classes()
        if classes is not None and classes != self.num_classes:
            raise IdentikitError(f"{name} returns {self.num_classes} classes, expected {classes}")

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], *, device: str = "auto", chunk_size: int | None = None
    ) -> Classifier:
        """A Classifier for an identikit checkpoint file."""
        module, meta = load_checkpoint(path)
        return cls(
            module,
            device=resolve_device(device),
            chunk_size=chunk_size,
            name=Path(path).name,
            sha256=file_sha256(path),
            classes=int(meta["num_classes"]),
        )

    @torch.inference_mode()
    def _probe_classes(self) -> int:
        out = self.module(torch.zeros(2, 1, 28, 28, device=self.device))
        if out.dim() != 2 or out.shape[0] != 2 or out.shape[1] < 2:
            raise IdentikitError(
                f"{self.name}: expected outputs of shape (N, classes), got {tuple(out.shape)}"
            )
        return int(out.shape[1])

    @torch.inference_mode()
    def log_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, classes), float32, on the Classifier's device.

        Log-probabilities keep their resolution near certainty (1 - 1e-9 is still distinct from
        1 - 1e-8), where probabilities in float32 round to 1.
        """
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise IdentikitError(
                f"expected images of shape (N, 1, 28, 28), got {tuple(images.shape)}"
            )
        outputs = []
        for start in range(0, images.shape[0], self.chunk_size):
            chunk = images[start : start + self.chunk_size].to(self.device, torch.float32)
            outputs.append(torch.log_softmax(self.module(chunk).float(), dim=1))
        self.queries += images.shape[0]
        if not outputs:
            return torch.zeros(0, self.num_classes, device=self.device)
        result = torch.cat(outputs)
        if not torch.isfinite(result).all():
            raise IdentikitError(f"{self.name} returned NaN or infinite outputs")
        return result

    def value_and_grad(
        self,
        images: torch.Tensor,
        objective: Callable[[torch.Tensor, torch.Tensor, slice], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective values (N,) and their gradients with respect to the pixels.

        ``objective(x, log_probabilities, rows)`` gets a chunk of images (with gradients
        enabled), the model's log-probabilities for them and the chunk's rows within
        ``images``; it returns one value per image. Each image counts as one query. Only for
        models that give gradients (white-box strategies).
        """
        values, grads = [], []
        for start in range(0, images.shape[0], self.chunk_size):
            rows = slice(start, min(start + self.chunk_size, images.shape[0]))
            x = images[rows].detach().to(self.device, torch.float32).requires_grad_(True)
            with torch.enable_grad():
                log_probabilities = torch.log_softmax(self.module(x).float(), dim=1)
                value = objective(x, log_probabilities, rows)
                (grad,) = torch.autograd.grad(value.sum(), x)
            values.append(value.detach())
            grads.append(grad)
        self.queries += images.shape[0]
        if not values:
            return torch.zeros(0, device=self.device), torch.zeros_like(images)
        result = torch.cat(values)
        if not torch.isfinite(result).all():
            raise IdentikitError(f"{self.name} returned NaN or infinite outputs")
        return result, torch.cat(grads)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for pixel images in [0, 1]."""
        return self.log_probabilities(images).exp()
