"""A multilayer perceptron: a second, architecturally different judge of identikits.

Two hidden layers of 512 ReLU units with dropout 0.2, as in the Keras MNIST MLP example; it
reaches about 98% test accuracy. Used to ask whether an identikit made for one network is a
digit to a network built differently.
"""

from __future__ import annotations

import torch
from torch import nn

from identikit.base.shapes import ImageShape
from identikit.data.datasets import MNIST_SHAPE
from identikit.models import register
from identikit.models.training_config import TrainConfig


class MLP(nn.Module):
    """C*H*W (784 for MNIST) -> 512 -> 512 -> classes, ReLU, dropout 0.2 while training;
    returns logits."""

    def __init__(self, num_classes: int = 10, shape: ImageShape = MNIST_SHAPE) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(shape.size, 512),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.layers(x)
        return logits


register(
    "mlp",
    training=TrainConfig(epochs=5, batch_size=128, lr=2e-3),
    description="multilayer perceptron 784 -> 512 -> 512 -> 10",
)(MLP)
