"""SEAM-style pixel correlation module head (the paper's teacher head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate import HEADS


@HEADS.register("pcm")
class PcmHead(nn.Module):
    """1x1 conv class map refined by pixel correlations of features and image colour (SEAM's PCM).

    The refined map is the class map (what ``align: class_map`` transfers and the ``class_map`` CAM reads); the
    logits pool the unrefined map, as in SEAM, so the classification loss trains neither the correlations nor the
    map through them (through them it taught the affinities to spread the smoke score over the whole image). SEAM
    trains the correlation embedding with its equivariance losses, which the harness does not have: here it learns
    only where a loss reaches the refined map (L_tf in co-training) and otherwise keeps its initial weights.

    Args:
        embed_channels: width of the embedding whose cosine similarities give the affinities.
    """

    def __init__(self, in_channels: int, num_classes: int, embed_channels: int = 64) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1)
        self.embed = nn.Conv2d(in_channels + 3, embed_channels, kernel_size=1, bias=False)

    def forward(self, features: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        class_map = self.classifier(features)
        b, k, h, w = class_map.shape
        colour = F.adaptive_avg_pool2d(images, (h, w))
        # SEAM detaches the features so the correlation branch does not reshape the classifier
        embedding = F.normalize(self.embed(torch.cat([features.detach(), colour], dim=1)).flatten(2), dim=1)
        affinity = F.relu(embedding.transpose(1, 2) @ embedding)  # [B, hw, hw]
        affinity = affinity / (affinity.sum(dim=1, keepdim=True) + 1e-5)
        return (class_map.flatten(2) @ affinity).view(b, k, h, w), class_map
