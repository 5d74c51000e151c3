"""Softmax regression: the model of TensorFlow's "MNIST for ML beginners" tutorial.

One linear layer from the pixels (784 for MNIST; C x H x W for any shape) to the class logits,
y = softmax(Wx + b). The tutorial reports about 92% test accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models import register
from identikit.models.training_config import TrainConfig


class SoftmaxRegression(nn.Module):
    """Linear C*H*W (784 for MNIST) -> classes on the flattened image; returns logits."""

    def __init__(self, num_classes: int = 10, shape: ImageShape = MNIST_SHAPE) -> None:
        super().__init__()
        self.linear = nn.Linear(shape.size, num_classes)

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
