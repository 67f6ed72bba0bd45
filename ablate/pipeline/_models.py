"""Networks: a registered backbone plus a registered head (trial path step: train)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ablate._registries import BACKBONES, HEADS
from ablate.config._schema import NetworkConfig
from ablate.pipeline._data import CLASSES

NUM_CLASSES = len(CLASSES)  # the paper trains a binary classifier


@dataclass
class NetworkOutput:
    """One forward pass: backbone feature map, head class map and pooled logits."""

    features: torch.Tensor
    class_map: torch.Tensor
    logits: torch.Tensor

    def aligned(self, align: str) -> torch.Tensor:
        """The map a knowledge-transfer loss compares (``class_map`` or ``features``)."""
        return self.class_map if align == "class_map" else self.features


class Network(nn.Module):
    """Backbone -> feature map -> head -> class map -> global average pooled logits.

    A head that refines its map (by pixel correlations, say) returns ``(class_map, logit_map)``: the logits pool
    ``logit_map``, the map it classifies from, so the classification loss cannot shape the refinement.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, align: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.align = align

    def forward(self, images: torch.Tensor) -> NetworkOutput:
        features = self.backbone(images)
        head_output = self.head(features, images)
        class_map, logit_map = head_output if isinstance(head_output, tuple) else (head_output, head_output)
        return NetworkOutput(features, class_map, logit_map.mean(dim=(2, 3)))

    @property
    def aligned_channels(self) -> int:
        return NUM_CLASSES if self.align == "class_map" else self.backbone.out_channels


def build_network(role_config: NetworkConfig) -> Network:
    """Build a network from a config's ``teacher``/``student`` section."""
    backbone = BACKBONES.build(role_config.backbone)
    head = HEADS.build(role_config.head, in_channels=backbone.out_channels, num_classes=NUM_CLASSES)
    return Network(backbone, head, role_config.align)


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path``; integer parts index sequences and may be negative."""
    module = root
    for part in path.split("."):
        try:
            module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
        except (AttributeError, IndexError, TypeError):
            raise ValueError(f"layer '{path}': '{part}' does not exist in {type(module).__name__}") from None
    if not isinstance(module, nn.Module):
        raise ValueError(f"layer '{path}' is a {type(module).__name__}, not a layer (nn.Module)")
    return module
