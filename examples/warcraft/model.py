"""The papers' cost network for Warcraft: "CombResNet18", the stem and first stage of ResNet-18.

Vlastelica et al. (ICLR 2020) and the I-MLE/AIMLE papers cut torchvision's ResNet-18 after
``layer1`` and pool to the grid; the few layers are written out here so torchvision is not needed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CombResNet18"]


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convolutions and an identity shortcut), as in torchvision."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class CombResNet18(nn.Module):
    """Image ``[B, 3, 8K, 8K]`` -> non-negative cell costs ``[B, K, K]``.

    conv1 (3→64, 7×7, stride 2, pad 3, no bias) → BatchNorm → ReLU → MaxPool(3, 2, 1) → two
    BasicBlocks (64 channels) → AdaptiveMaxPool2d((K, K)) → mean over channels → abs.
    Initialised like torchvision's ResNet (Kaiming-normal convolutions, BatchNorm at 1/0).
    """

    def __init__(self, grid_size: int):
        super().__init__()
        if not isinstance(grid_size, int) or grid_size < 1:
            raise ValueError(f"CombResNet18: grid_size must be a positive int, got {grid_size!r}")
        self.grid_size = grid_size
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64), BasicBlock(64))
        self.pool = nn.AdaptiveMaxPool2d((grid_size, grid_size))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: Tensor) -> Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(images))))
        x = self.pool(self.layer1(x))
        return x.mean(dim=1).abs()
