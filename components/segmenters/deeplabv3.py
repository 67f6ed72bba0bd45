"""torchvision's DeepLabV3 with a ResNet-50 or ResNet-101 backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ablate import SEGMENTERS


@SEGMENTERS.register("deeplabv3", label="DeepLabV3")
class DeepLabV3(nn.Module):
    """DeepLabV3 (atrous ResNet, output stride 8, ASPP head; Chen et al. 2017) from torchvision.

    Args:
        num_classes: classes per pixel (injected by the harness).
        backbone: ``resnet50`` or ``resnet101``.
        checkpoint: a local weights file: a torchvision DeepLabV3 state dict (its classifier's last layer is kept
            only when it has ``num_classes`` outputs; the auxiliary head is dropped) or an ImageNet ResNet state
            dict for the backbone (``fc`` dropped). Random weights when not given; nothing is downloaded.
    """

    def __init__(
        self, num_classes: int, backbone: Literal["resnet50", "resnet101"] = "resnet50", checkpoint: str | None = None
    ) -> None:
        super().__init__()
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        # imported where the network is built: the read-only commands (status, report, ...) load every component
        from torchvision.models import segmentation

        build = {"resnet50": segmentation.deeplabv3_resnet50, "resnet101": segmentation.deeplabv3_resnet101}[backbone]
        self.model = build(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        if checkpoint is not None and torch.empty(0).device.type != "meta":  # validation builds shapes only
            self._load(checkpoint)

    def _load(self, checkpoint: str) -> None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state))
        whole = any(key.startswith("backbone.") for key in state)
        target = self.model if whole else self.model.backbone
        own = target.state_dict()
        kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in kept and not k.startswith("classifier.4.")]
        if missing:
            raise ValueError(f"checkpoint {checkpoint} is no DeepLabV3 or ResNet state dict (lacks {missing[0]}, ...)")
        target.load_state_dict(kept, strict=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["out"]
