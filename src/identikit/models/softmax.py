"""Softmax regression: the model of TensorFlow's "MNIST for ML beginners" tutorial.

One linear layer from the 784 pixels to the class logits, y = softmax(Wx + b). The tutorial
reports about 92% test accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from identikit.models import register
from identikit.models.training_config import TrainConfig


class SoftmaxRegression(nn.Module):
    """Linear 784 -> classes on the flattened image; returns logits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(x.flatten(1))
        return logits


# Adam with a one-cycle schedule converges in a few epochs; the tutorial's plain SGD at lr 0.5
# would need many more passes for the same accuracy.
register(
    "softmax",
    training=TrainConfig(epochs=5, batch_size=100, lr=5e-3, threads=1),
    description="softmax regression, linear 784 -> 10 (TensorFlow 'MNIST for ML beginners')",
)(SoftmaxRegression)
