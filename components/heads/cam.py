"""CAM classifier head."""

from __future__ import annotations

import torch
from torch import nn

from ablate import HEADS


@HEADS.register("cam")
class CamHead(nn.Module):
    """1x1 conv class map, pooled to logits by the harness (the standard CAM classifier)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)
