"""A PyTorch model that takes a batch of exactly one image, run on any batch one image at a time.

Some published models are traced for a batch of 1: the quantized MobileNetV2 of PyTorch's iOS
demo app reshapes its features with ``reshape(1, -1)``, so that two images become one row twice
as long and its last layer fails. identikit scores many images at once everywhere, so such a
model is held as :class:`OneImageAtATime`: every caller (the scoring engines, the probe, the
gradients) then gets one row of outputs per image, whatever its batch. The loading code decides
when (:mod:`identikit.classifier.probe`: the model fails on the probe batch and runs on each
probe image alone); ONNX graphs with a static batch of 1 are run so by
:class:`~identikit.models.onnx_model.OnnxModel` itself.

Gradients flow through each image's own pass. What needs a whole batch in one pass cannot be
had: batch-norm statistics over the batch (DeepInversion, Yin et al. 2020) are refused by the
Classifier, as for an ONNX graph fixed to a batch of 1.
"""

from __future__ import annotations

import torch
from torch import nn

from identikit.base.errors import IdentikitError


class OneImageAtATime(nn.Module):
    """``model`` (inputs (1, ...) -> outputs (1, classes)) run on inputs (N, ...) image by
    image: outputs (N, classes), row i the model's output for image i alone.

    ``fixed_batch`` is 1, as for an ONNX model of a static batch of 1 (what ``identikit
    export`` reads). The module is not traced: a trace would unroll the loop to the example's
    batch and give that many rows for any batch, so tracing it (an export to ONNX) is a
    one-line error instead.
    """

    fixed_batch = 1

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # type: ignore[attr-defined,no-untyped-call]
            raise IdentikitError(
                "a model that takes a batch of 1 only is run one image at a time, which a "
                "trace would fix to the example's batch size: it is not exported"
            )
        rows = [self.model(inputs[i : i + 1]) for i in range(inputs.shape[0])]
        if not rows:
            raise ValueError("no images to run the model on")
        return torch.cat(rows)

    @property
    def code(self) -> str:
        """What the engines' cache keys read of a TorchScript model's structure
        (:func:`~identikit.engines.scorers.module_digest`): the wrapped model's own code, where
        it has one, marked as run one image at a time."""
        inner = getattr(self.model, "code", None)
        return f"one image at a time\n{inner if isinstance(inner, str) else repr(self.model)}"
