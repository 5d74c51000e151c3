"""ResNet-18 (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition").

The 18-layer residual network of the paper's Table 1, for images of any shape: a 7x7
convolution of stride 2 and a 3x3 max-pooling of stride 2, then four stages of two basic
blocks (two 3x3 convolutions with batch normalisation and a shortcut) of 64, 128, 256 and 512
channels, each stage after the first halving the resolution, then global average pooling and
one dense layer to the classes. About 11.7 million parameters for 1,000 classes.

identikit has it for what users bring at ImageNet's scale (3 x 224 x 224, 1,000 classes): a
randomly initialised copy is enough to test that sweeps, engines and memory scale with the
image, and it trains on small colour data like any other architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from identikit.base.shapes import ImageShape
from identikit.models import register
from identikit.models.training_config import TrainConfig

IMAGENET_SHAPE = ImageShape(3, 224, 224)
"""The shape the paper's network is made for (and built for by default)."""
STAGES = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch normalisation, added to a shortcut, then ReLU.

    The shortcut is the input itself, or where the block changes the channels or the
    resolution a 1x1 convolution of the block's stride with batch normalisation (the paper's
    option B).
    """

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.residual(x) + self.shortcut(x))
        return out


class ResNet18(nn.Module):
    """Pixels in [0, 1], shape (N, C, H, W) -> logits (N, classes)."""

    def __init__(self, num_classes: int = 1000, shape: ImageShape = IMAGENET_SHAPE) -> None:
        super().__init__()
        # The stem and the three halvings divide the side by 32, yet a padded convolution of
        # stride 2 leaves one pixel of one pixel, and the global pooling takes any size: the
        # network takes any shape (28 x 28 reaches the last stage as 1 x 1).
        layers: list[nn.Module] = [
            nn.Conv2d(shape.channels, STAGES[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(STAGES[0]),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        inputs = STAGES[0]
        for stage, outputs in enumerate(STAGES):
            for block in range(BLOCKS_PER_STAGE):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(inputs, outputs, stride))
                inputs = outputs
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(inputs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classify(self.features(x))
        return logits


# The paper trained with SGD at 0.1 and batch 256 for 600,000 steps; identikit's recipe is the
# one-cycle Adam schedule of its other batch-normalised network, for small data sets.
register(
    "resnet18",
    training=TrainConfig(epochs=5, batch_size=64, lr=2e-3, weight_decay=1e-4, precision="auto"),
    description="ResNet-18 (He et al. 2016): 7x7 stem, 4 stages of 2 residual blocks "
    "(64-512 channels), global average pool, dense classes",
)(ResNet18)
